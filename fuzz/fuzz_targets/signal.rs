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
    // Whatever was accepted names a real signal, and its canonical name and
    // number both read back as the same one.
    assert_eq!(hull::signal::parse(sig.as_str()).unwrap(), sig);
    assert_eq!(hull::signal::parse(&(sig as i32).to_string()).unwrap(), sig);
});
