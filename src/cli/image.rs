//! Image commands (hull-only): `image load|ls|inspect|rm|prune|tag`, and
//! Docker's short forms `images`, `rmi`, `tag`, `save`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::error::{Context, Error, Result};
use crate::image::{self, Digest, Record, Store};
use crate::log::Logger;

#[derive(Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Load images from a docker-archive or OCI layout (tar, tar.gz or directory)
    Load(LoadArgs),
    /// List images
    Ls(ImagesArgs),
    /// Print images as JSON
    Inspect {
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Remove images (refused while a container uses one)
    Rm(RmiArgs),
    /// Remove images no container uses: untagged ones, with -a all
    Prune(PruneArgs),
    /// Give an image another name
    Tag(TagArgs),
    /// Write images to an OCI layout tar
    Save(SaveArgs),
}

#[derive(Args)]
pub struct LoadArgs {
    /// The archive (`-` or absent: stdin)
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    input: PathBuf,
    /// Print nothing but errors
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct ImagesArgs {
    /// Only the image ids
    #[arg(short, long)]
    quiet: bool,
    /// Full image ids
    #[arg(long)]
    no_trunc: bool,
    /// table, or json (one object per line)
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

#[derive(Args)]
pub struct RmiArgs {
    /// Also untag an image stopped containers still use (never one a running
    /// container uses)
    #[arg(short, long)]
    force: bool,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// All images no container uses, not only untagged ones
    #[arg(short, long)]
    all: bool,
    /// Accepted for Docker compatibility; hull never asks
    #[arg(short, long)]
    force: bool,
}

#[derive(Args)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE")]
    source: String,
    #[arg(value_name = "TARGET")]
    target: String,
}

#[derive(Args)]
pub struct SaveArgs {
    /// The tar to write (default: stdout, unless it is a terminal)
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn image(args: ImageArgs, log: &Logger) -> Result<()> {
    match args.command {
        ImageCommand::Load(a) => load(a, log),
        ImageCommand::Ls(a) => images(a),
        ImageCommand::Inspect { images } => inspect(&images),
        ImageCommand::Rm(a) => rmi(a),
        ImageCommand::Prune(a) => prune(a),
        ImageCommand::Tag(a) => tag(a),
        ImageCommand::Save(a) => save(a),
    }
}

pub fn load(args: LoadArgs, log: &Logger) -> Result<()> {
    let store = Store::default_store();
    if args.input.as_os_str() == "-" && std::io::stdin().is_terminal() {
        return Err(Error::new("image load")
            .detail("no archive: stdin is a terminal")
            .hint("give the archive with -i FILE, or pipe it in"));
    }
    let loaded =
        image::archive::load(&store, &args.input, log).map_err(|e| e.within("image load"))?;
    if args.quiet {
        return Ok(());
    }
    let mut out = String::new();
    for l in loaded {
        if l.tags.is_empty() {
            out.push_str(&format!("Loaded image ID: {}\n", l.record.id));
        }
        for t in l.tags {
            out.push_str(&format!("Loaded image: {t}\n"));
        }
    }
    super::out::print(&out)
}

fn split_ref(r: &str) -> (&str, &str) {
    r.rsplit_once(':').unwrap_or((r, "latest"))
}

/// Docker's sizes: decimal units, three significant digits ("4.26MB").
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    let text = if u == 0 || v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", units[u])
}

pub fn images(args: ImagesArgs) -> Result<()> {
    let store = Store::default_store();
    let records = store.records();
    let refs = store.refs()?;
    let now = crate::time::now_secs();
    let id_cell = |id: &Digest| {
        if args.no_trunc {
            id.to_string()
        } else {
            id.short().to_string()
        }
    };
    let mut out = String::new();
    if args.quiet {
        for r in &records {
            out.push_str(&format!("{}\n", id_cell(&r.id)));
        }
        return super::out::print(&out);
    }
    let mut rows = vec![vec![
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
    ]];
    for r in &records {
        let tags = Store::tags_of(&refs, &r.id);
        let names: Vec<(String, String)> = if tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            tags.iter()
                .map(|t| {
                    let (n, t) = split_ref(t);
                    (n.to_string(), t.to_string())
                })
                .collect()
        };
        let created = crate::time::parse_rfc3339(&r.created)
            .map(|t| format!("{} ago", crate::time::human_duration(now - t)))
            .unwrap_or_default();
        for (name, tag) in names {
            if args.format == "json" {
                let row = json!({"Repository": name, "Tag": tag, "ID": id_cell(&r.id),
                                 "CreatedAt": r.created, "CreatedSince": created,
                                 "Size": human_size(r.size)});
                out.push_str(&format!("{row}\n"));
            } else {
                rows.push(vec![
                    name,
                    tag,
                    id_cell(&r.id),
                    created.clone(),
                    human_size(r.size),
                ]);
            }
        }
    }
    if args.format == "json" {
        return super::out::print(&out);
    }
    super::out::print(&super::table::columns(&rows))
}

pub fn inspect(names: &[String]) -> Result<()> {
    let store = Store::default_store();
    let refs = store.refs()?;
    let mut out = Vec::new();
    for name in names {
        let r = store.resolve(name)?;
        let cfg: Value = serde_json::from_slice(&store.read_blob(&r.id)?)
            .map_err(|e| Error::new("parse image config").detail(e.to_string()))?;
        out.push(json!({
            "Id": r.id.to_string(),
            "RepoTags": Store::tags_of(&refs, &r.id),
            "Created": r.created,
            "Size": r.size,
            "Architecture": cfg["architecture"],
            "Os": cfg["os"],
            "Config": cfg["config"],
            "RootFS": {"Type": "layers", "Layers": r.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
            "Containers": store.existing_users(&r.id).iter().map(|u| u.id.clone()).collect::<Vec<_>>(),
        }));
    }
    let text = serde_json::to_string_pretty(&out).expect("JSON");
    super::out::print(&format!("{text}\n"))
}

pub fn tag(args: TagArgs) -> Result<()> {
    let store = Store::default_store();
    let _lock = store.lock_exclusive()?;
    let within = |e: Error| e.within(format!("tag {}", args.source));
    let record = store.resolve(&args.source).map_err(within)?;
    let target = image::normalize(&args.target).map_err(within)?;
    let mut refs = store.refs()?;
    refs.insert(target, record.id);
    store.put_refs(&refs)
}

/// Docker's rules: a name is untagged, and the image goes with its last
/// name unless a container still uses it (then, with -f and no running
/// user, it stays untagged until `image prune`); an id removes the image
/// and every name (more than one name needs -f).
pub fn rmi(args: RmiArgs) -> Result<()> {
    let store = Store::default_store();
    let _lock = store.lock_exclusive()?;
    let mut out = String::new();
    let mut first_err = None;
    for name in &args.images {
        match rmi_one(&store, name, args.force, &mut out) {
            Ok(()) => {}
            Err(e) => {
                let e = e.within(format!("rmi {name}"));
                if first_err.is_none() {
                    first_err = Some(e);
                } else {
                    crate::log::Logger::stderr_only().error(&e.to_string());
                }
            }
        }
    }
    super::out::print(&out)?;
    first_err.map_or(Ok(()), Err)
}

fn rmi_one(store: &Store, name: &str, force: bool, out: &mut String) -> Result<()> {
    let record = store.resolve(name)?;
    let mut refs = store.refs()?;
    let tags = Store::tags_of(&refs, &record.id);
    let by_name = image::normalize(name)
        .ok()
        .filter(|r| refs.get(r) == Some(&record.id));
    let users = store.existing_users(&record.id);
    let live: Vec<&str> = users
        .iter()
        .filter(|u| u.live)
        .map(|u| u.id.as_str())
        .collect();
    let untag: Vec<String> = match &by_name {
        Some(r) if tags.len() > 1 => vec![r.clone()],
        _ => {
            if tags.len() > 1 && !force {
                return Err(Error::new(format!(
                    "image {} is named {}",
                    record.id.short(),
                    tags.join(", ")
                ))
                .hint("remove it by name, or use -f to remove every name"));
            }
            if !live.is_empty() {
                return Err(Error::new(format!(
                    "image is used by running container {}",
                    live.join(", ")
                ))
                .hint("stop and remove the container first (cannot be forced)"));
            }
            if !users.is_empty() && !force {
                let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
                return Err(Error::new(format!(
                    "image is used by stopped container {}",
                    ids.join(", ")
                ))
                .hint("remove the container first (`hull rm`), or use -f"));
            }
            tags.clone()
        }
    };
    for t in &untag {
        refs.remove(t);
        out.push_str(&format!("Untagged: {t}\n"));
    }
    store.put_refs(&refs)?;
    let still_named = !Store::tags_of(&refs, &record.id).is_empty();
    if still_named || !users.is_empty() {
        return Ok(());
    }
    store.remove_record(&record.id)?;
    out.push_str(&format!("Deleted: {}\n", record.id));
    Ok(())
}

pub fn prune(args: PruneArgs) -> Result<()> {
    let store = Store::default_store();
    let _lock = store.lock_exclusive()?;
    let mut refs = store.refs()?;
    let mut out = String::new();
    let mut deleted = 0u64;
    for r in store.records() {
        let tags = Store::tags_of(&refs, &r.id);
        if (!tags.is_empty() && !args.all) || !store.existing_users(&r.id).is_empty() {
            continue;
        }
        for t in &tags {
            refs.remove(t);
            out.push_str(&format!("Untagged: {t}\n"));
        }
        store.put_refs(&refs)?;
        store.remove_record(&r.id)?;
        deleted += r.size;
        out.push_str(&format!("Deleted: {}\n", r.id));
    }
    for p in store.sweep()? {
        out.push_str(&format!("Removed leftover: {}\n", p.display()));
    }
    out.push_str(&format!("Total reclaimed space: {}\n", human_size(deleted)));
    super::out::print(&out)
}

pub fn save(args: SaveArgs) -> Result<()> {
    let store = Store::default_store();
    let _lock = store.lock_shared()?;
    let refs = store.refs()?;
    let mut images: Vec<(Record, Vec<String>)> = Vec::new();
    for name in &args.images {
        let record = store.resolve(name).map_err(|e| e.within("save"))?;
        let tag = image::normalize(name)
            .ok()
            .filter(|r| refs.get(r) == Some(&record.id));
        match images.iter_mut().find(|(r, _)| r.id == record.id) {
            Some((_, tags)) => tags.extend(tag),
            None => images.push((record, tag.into_iter().collect())),
        }
    }
    let Some(path) = args.output else {
        if std::io::stdout().is_terminal() {
            return Err(Error::new("save")
                .detail("refusing to write an archive to a terminal")
                .hint("give a file with -o FILE, or redirect stdout"));
        }
        return image::save::save(&store, &images, std::io::stdout().lock());
    };
    let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
    let file = std::fs::File::create(&tmp).step_at("create archive", &tmp)?;
    let written = image::save::save(&store, &images, std::io::BufWriter::new(file))
        .and_then(|()| std::fs::rename(&tmp, &path).step_at("write archive", &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(77_800_000), "77.8MB");
        assert_eq!(human_size(1_200_000_000), "1.2GB");
        assert_eq!(human_size(123_456), "123kB");
    }
}
