//! Statistics for `events`: the shape of runc's `{"type":"stats","data":...}`
//! (cpu, memory, pids, blkio), read from v1 or v2 files.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::{oom_kills, read, Paths};

fn num(dir: &Path, file: &str) -> u64 {
    read(dir, file)
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// "key value" lines → map of numbers.
fn flat(dir: &Path, file: &str) -> Map<String, Value> {
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), json!(v.trim().parse::<u64>().ok()?)))
        })
        .collect()
}

pub fn collect(paths: &Paths) -> Value {
    let mut data = Map::new();
    data.insert("cpu".into(), cpu(paths));
    data.insert("memory".into(), memory(paths));
    let pids = match paths.controller("pids") {
        Some((d, _)) => {
            let limit = read(d, "pids.max")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            json!({"current": num(d, "pids.current"), "limit": limit})
        }
        None => json!({"current": super::pids(paths).len()}),
    };
    data.insert("pids".into(), pids);
    data.insert("blkio".into(), blkio(paths));
    Value::Object(data)
}

fn cpu(paths: &Paths) -> Value {
    if let Some(d) = paths.v1("cpuacct") {
        let percpu: Vec<u64> = read(d, "cpuacct.usage_percpu")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let st = flat(d, "cpuacct.stat");
        // cpuacct.stat is in USER_HZ (100/s): runc reports nanoseconds.
        let ns = |k: &str| st.get(k).and_then(Value::as_u64).unwrap_or(0) * 10_000_000;
        let mut out = json!({"usage": {"total": num(d, "cpuacct.usage"), "percpu": percpu,
                                      "kernel": ns("system"), "user": ns("user")}});
        if let Some(c) = paths.v1("cpu") {
            let t = flat(c, "cpu.stat");
            out["throttling"] = json!({
                "periods": t.get("nr_periods"), "throttled_periods": t.get("nr_throttled"),
                "throttled_time": t.get("throttled_time")});
        }
        return out;
    }
    if let Some((d, true)) = paths
        .controller("cpu")
        .or_else(|| paths.unified().map(|u| (u, true)))
    {
        let st = flat(d, "cpu.stat");
        let us = |k: &str| st.get(k).and_then(Value::as_u64).unwrap_or(0) * 1000;
        return json!({
            "usage": {"total": us("usage_usec"), "kernel": us("system_usec"), "user": us("user_usec")},
            "throttling": {"periods": st.get("nr_periods"), "throttled_periods": st.get("nr_throttled"),
                           "throttled_time": us("throttled_usec")}
        });
    }
    json!({})
}

fn memory(paths: &Paths) -> Value {
    match paths.controller("memory") {
        Some((d, false)) => json!({
            "usage": {"usage": num(d, "memory.usage_in_bytes"), "max": num(d, "memory.max_usage_in_bytes"),
                      "limit": num(d, "memory.limit_in_bytes"), "failcnt": num(d, "memory.failcnt")},
            "swap": {"usage": num(d, "memory.memsw.usage_in_bytes"), "max": num(d, "memory.memsw.max_usage_in_bytes"),
                     "limit": num(d, "memory.memsw.limit_in_bytes"), "failcnt": num(d, "memory.memsw.failcnt")},
            "oom_kill": oom_kills(paths),
            "raw": flat(d, "memory.stat"),
        }),
        Some((d, true)) => {
            let limit = read(d, "memory.max")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            json!({
                "usage": {"usage": num(d, "memory.current"), "max": num(d, "memory.peak"), "limit": limit},
                "swap": {"usage": num(d, "memory.swap.current")},
                "oom_kill": oom_kills(paths),
                "raw": flat(d, "memory.stat"),
            })
        }
        None => json!({}),
    }
}

fn blkio(paths: &Paths) -> Value {
    let mut entries = Vec::new();
    if let Some(d) = paths.v1("blkio") {
        for l in read(d, "blkio.throttle.io_service_bytes_recursive")
            .unwrap_or_default()
            .lines()
        {
            let f: Vec<&str> = l.split_whitespace().collect();
            if let [dev, op, v] = f[..] {
                if let Some((ma, mi)) = dev.split_once(':') {
                    entries.push(json!({"major": ma.parse::<u64>().unwrap_or(0), "minor": mi.parse::<u64>().unwrap_or(0),
                                        "op": op, "value": v.parse::<u64>().unwrap_or(0)}));
                }
            }
        }
    } else if let Some((d, true)) = paths.controller("io") {
        for l in read(d, "io.stat").unwrap_or_default().lines() {
            let mut it = l.split_whitespace();
            let Some((ma, mi)) = it.next().and_then(|d| d.split_once(':')) else {
                continue;
            };
            for kv in it {
                if let Some((k, v)) = kv.split_once('=') {
                    let op = match k {
                        "rbytes" => "Read",
                        "wbytes" => "Write",
                        _ => continue,
                    };
                    entries.push(json!({"major": ma.parse::<u64>().unwrap_or(0), "minor": mi.parse::<u64>().unwrap_or(0),
                                        "op": op, "value": v.parse::<u64>().unwrap_or(0)}));
                }
            }
        }
    }
    json!({"ioServiceBytesRecursive": entries})
}
