//! The command line of the image commands, a clap tree of its own: main.rs
//! hands over any command it does not know, and only then is this tree
//! built. clap builds every subcommand's definition to parse one, so
//! keeping these out of the main tree keeps `run`'s start-up as it was.
//! The global flags hull's tree took before the command still apply
//! (`hull --debug --data-root D images`); `--data-root` may also come
//! after it.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::Result;
use crate::log::Logger;

#[derive(Parser)]
#[command(name = "hull", disable_version_flag = true)]
struct ImageCli {
    /// Directory for overlay upper dirs, named volumes and images
    #[arg(long, global = true)]
    data_root: Option<PathBuf>,
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Manage images: load, ls, inspect, rm, prune, tag, save
    Image(super::image::ImageArgs),
    /// List images
    Images(super::image::ImagesArgs),
    /// Remove images
    Rmi(super::image::RmiArgs),
    /// Give an image another name
    Tag(super::image::TagArgs),
    /// Write images to an OCI layout tar
    Save(super::image::SaveArgs),
    /// Download an image from a registry
    Pull(super::registry::PullArgs),
    /// Upload an image to a registry
    Push(super::registry::PushArgs),
    /// Keep credentials for a registry (checked first)
    Login(super::registry::LoginArgs),
    /// Forget the credentials for a registry
    Logout(super::registry::LogoutArgs),
}

const NAMES: [&str; 9] = [
    "image", "images", "rmi", "tag", "save", "pull", "push", "login", "logout",
];

/// The image command `argv` (its name first) asks for, and a --data-root
/// given after it; None if the name is not one. A bad flag exits with
/// clap's message, as in hull's own tree.
pub fn parse(argv: Vec<OsString>) -> Option<(ImageCommand, Option<PathBuf>)> {
    let name = argv.first()?.to_str()?;
    if !NAMES.contains(&name) {
        return None;
    }
    let cli = ImageCli::parse_from(std::iter::once(OsString::from("hull")).chain(argv));
    Some((cli.command, cli.data_root))
}

pub fn run(command: ImageCommand, log: &Logger) -> Result<()> {
    match command {
        ImageCommand::Image(args) => super::image::image(args, log),
        ImageCommand::Images(args) => super::image::images(args),
        ImageCommand::Rmi(args) => super::image::rmi(args),
        ImageCommand::Tag(args) => super::image::tag(args),
        ImageCommand::Save(args) => super::image::save(args),
        ImageCommand::Pull(args) => super::registry::pull(args, log),
        ImageCommand::Push(args) => super::registry::push(args, log),
        ImageCommand::Login(args) => super::registry::login(args),
        ImageCommand::Logout(args) => super::registry::logout(args),
    }
}
