//! The issuer's policy file: any text is refused with an error or accepted, and an accepted
//! policy survives a write and a read unchanged (what `GET /v1/policy` publishes is what
//! the issuer enforces).
#![no_main]
use libfuzzer_sys::fuzz_target;
use microcash::protocol::policy::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = Policy::from_toml(text) {
        let written = toml::to_string(&policy).expect("a policy serialises");
        let read = Policy::from_toml(&written).expect("a written policy reads back");
        assert_eq!(read, policy);
    }
});
