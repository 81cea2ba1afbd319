//! linux.resources as the OCI spec writes it in JSON: read from the bundle
//! (through oci-spec's serialisation) and from `update --resources FILE`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resources {
    pub devices: Option<Vec<DeviceRule>>,
    pub memory: Option<Memory>,
    pub cpu: Option<Cpu>,
    pub pids: Option<Pids>,
    #[serde(rename = "blockIO")]
    pub block_io: Option<BlockIo>,
    pub hugepage_limits: Option<Vec<Hugepage>>,
    pub network: Option<Network>,
    pub unified: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeviceRule {
    pub allow: bool,
    #[serde(rename = "type")]
    pub typ: Option<String>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Memory {
    pub limit: Option<i64>,
    pub reservation: Option<i64>,
    pub swap: Option<i64>,
    pub kernel: Option<i64>,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: Option<i64>,
    pub swappiness: Option<u64>,
    #[serde(rename = "disableOOMKiller")]
    pub disable_oom_killer: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Cpu {
    pub shares: Option<u64>,
    pub quota: Option<i64>,
    pub burst: Option<u64>,
    pub period: Option<u64>,
    pub realtime_runtime: Option<i64>,
    pub realtime_period: Option<u64>,
    pub cpus: Option<String>,
    pub mems: Option<String>,
    pub idle: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Pids {
    pub limit: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BlockIo {
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
    pub weight_device: Option<Vec<WeightDevice>>,
    pub throttle_read_bps_device: Option<Vec<ThrottleDevice>>,
    pub throttle_write_bps_device: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "throttleReadIOPSDevice")]
    pub throttle_read_iops_device: Option<Vec<ThrottleDevice>>,
    #[serde(rename = "throttleWriteIOPSDevice")]
    pub throttle_write_iops_device: Option<Vec<ThrottleDevice>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WeightDevice {
    pub major: i64,
    pub minor: i64,
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ThrottleDevice {
    pub major: i64,
    pub minor: i64,
    pub rate: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Hugepage {
    pub page_size: String,
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Network {
    #[serde(rename = "classID")]
    pub class_id: Option<u32>,
    pub priorities: Option<Vec<InterfacePriority>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InterfacePriority {
    pub name: String,
    pub priority: u32,
}

impl Resources {
    pub fn from_spec(spec: &oci_spec::runtime::Spec) -> Result<Resources> {
        let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
            return Ok(Resources::default());
        };
        let value = serde_json::to_value(res)
            .map_err(|e| Error::new("read linux.resources").detail(e.to_string()))?;
        Resources::from_json(value)
    }

    pub fn from_json(value: serde_json::Value) -> Result<Resources> {
        let res: Resources = serde_json::from_value(value)
            .map_err(|e| Error::new("read linux.resources").detail(e.to_string()))?;
        res.check_device_numbers()?;
        Ok(res)
    }

    /// A device number beyond 32 bits names no device, and cut to 32 bits
    /// it would name another one (2^32 + 1 is 1, so "allow c 4294967297:1"
    /// allowed /dev/mem): refused, as the v1 devices.allow file refuses it.
    fn check_device_numbers(&self) -> Result<()> {
        for (i, d) in self.devices.iter().flatten().enumerate() {
            for (what, n) in [("major", d.major), ("minor", d.minor)] {
                if let Some(n) = n.filter(|n| *n > i64::from(u32::MAX)) {
                    return Err(Error::new("read linux.resources")
                        .detail(format!("devices[{i}].{what} {n} is out of range"))
                        .hint("device numbers are 0-4294967295, or -1 for any"));
                }
            }
        }
        Ok(())
    }
}

/// "100", "100k", "64m", "1g", "1.5G", "64MiB" → bytes; "-1" stays -1.
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let mult: f64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(Error::new(format!("invalid size {s:?}")).hint("use e.g. 64m or 1g")),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| Error::new(format!("invalid size {s:?}")).hint("use e.g. 64m or 1g"))?;
    Ok((n * mult) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spec_json() {
        let r = Resources::from_json(serde_json::json!({
            "memory": {"limit": 1048576, "disableOOMKiller": true},
            "cpu": {"quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 10},
            "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 10}]},
            "devices": [{"allow": false, "access": "rwm"}],
            "unified": {"memory.high": "max"}
        }))
        .unwrap();
        assert_eq!(r.memory.unwrap().limit, Some(1048576));
        assert_eq!(r.cpu.unwrap().cpus.as_deref(), Some("0"));
        assert_eq!(r.pids.unwrap().limit, 10);
        assert_eq!(
            r.block_io.unwrap().throttle_read_bps_device.unwrap()[0].rate,
            10
        );
        assert!(!r.devices.unwrap()[0].allow);
    }

    /// Found by the fuzz target `config` (a device rule's major cut to 32 bits).
    #[test]
    fn device_numbers_beyond_32_bits_are_refused() {
        for field in ["major", "minor"] {
            let err = Resources::from_json(serde_json::json!({
                "devices": [{"allow": true, "type": "c", field: 4294967297_i64, "access": "rwm"}]
            }))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(&format!("devices[0].{field} 4294967297")),
                "{err}"
            );
        }
        let ok = Resources::from_json(serde_json::json!({
            "devices": [{"allow": true, "type": "c", "major": 4294967295_i64, "minor": -1}]
        }));
        assert!(ok.is_ok());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("2KiB").unwrap(), 2048);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("12x").is_err());
    }
}
