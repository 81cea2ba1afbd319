//! exec tests of the black-box suite.

use runtime_tests::harness::Test;

pub const TESTS: &[Test] = &[];
