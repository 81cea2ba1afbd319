//! A spec mount's `options` (comma-separated here: one option per item),
//! with the statvfs flags of the mount a bind remount changes, and
//! `linux.rootfsPropagation`.
#![no_main]

use hull::rootfs::options::{kept_flags, parse, prepare_propagation, root_propagation};
use libfuzzer_sys::fuzz_target;
use nix::sys::statvfs::FsFlags;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (st, rest) = data.split_at(8);
    let st = FsFlags::from_bits_truncate(u64::from_le_bytes(st.try_into().unwrap()));
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let list: Vec<&str> = text.split(',').collect();
    let o = parse(&list);
    // A flag is either set or explicitly cleared, never both; same for the
    // recursive attributes.
    assert!(!o.flags.intersects(o.cleared), "{o:?}");
    assert_eq!(o.rec_set & o.rec_clear, 0, "{o:?}");
    // Only unknown options reach the filesystem's data string.
    for d in o.data.split(',').filter(|d| !d.is_empty()) {
        assert!(!hull::rootfs::options::KNOWN.contains(&d), "{d} in data");
    }
    let keep = kept_flags(st, &o);
    // What the user cleared is never carried over from the source.
    assert!(!keep.intersects(o.cleared), "{keep:?} {o:?}");
    let _ = o.remount_flags();
    let _ = root_propagation(Some(text));
    let _ = prepare_propagation(Some(text));
});
