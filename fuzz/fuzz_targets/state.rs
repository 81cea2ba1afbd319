//! What `state`, `list`, `kill` and `delete` read back from a container's
//! state directory: state.json (the record, with its cgroup journal) and
//! storage.json. Written by hull, but a crash, a full disk or a hand edit
//! can leave anything there.
#![no_main]

use hull::state::parse_record;
use hull::storage::Journal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = parse_record(data) {
        // What hull writes for a record reads back as the same record
        // (compared as JSON values: annotation maps have no fixed order).
        let json = serde_json::to_vec(&record).unwrap();
        let again = parse_record(&json).unwrap();
        assert_eq!(
            serde_json::to_value(&again).unwrap(),
            serde_json::to_value(&record).unwrap()
        );
        let cg = &record.cgroups;
        let _ = (cg.unified(), cg.v2_only(), cg.procs_dir(), cg.v1("memory"));
    }
    if let Ok(journal) = Journal::parse(data) {
        let _ = journal.upper();
    }
});
