//! `hull kill ID SIGNAL`: names ("TERM", "sigkill") and numbers ("9").
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sig) = hull::signal::parse(text) else {
        return;
    };
    // Whatever was accepted is 0 (the liveness probe) or names a real
    // signal, and its canonical name and number both read back as it.
    assert_eq!(hull::signal::parse(&sig.to_string()).unwrap(), sig);
    if sig != 0 {
        let named = nix::sys::signal::Signal::try_from(sig).expect("a real signal");
        assert_eq!(hull::signal::parse(named.as_str()).unwrap(), sig);
    }
});
