//! What the `mrz` fuzz target checks, as a plain function: `fuzz/fuzz_targets/mrz.rs` calls it
//! under libFuzzer, and `tests/fuzz_regressions.rs` replays every input kept in
//! `fuzz/regressions/mrz/` through it in a normal `cargo test`, so that a crash found once
//! stays fixed.

use crate::mrz::parse;

/// `mrz`: the input's first line and the rest are read as the two MRZ lines. A valid read has
/// the shape of a TD3 MRZ; a refusal names at least one field and never repeats a run of six
/// or more letters of the input (a name).
pub fn mrz(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (line1, line2) = text.split_once('\n').unwrap_or((&text, ""));
    match parse(line1, line2) {
        Ok(fields) => {
            assert_eq!(line1.chars().count(), 44);
            assert_eq!(line2.chars().count(), 44);
            let _ = format!("{fields:?}");
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error lists at least one field");
            let message = errors.to_string();
            for line in [line1, line2] {
                for word in line.split(|c: char| !c.is_ascii_alphabetic()) {
                    if word.len() >= 6 && message.contains(word) {
                        // The word may be the message's own wording ("invalid", "characters")
                        // that the input happens to contain: with the word masked in the input
                        // (same length, same kind of characters), it must be gone from the
                        // message, else the message only says it anyway.
                        let mask = "Q".repeat(word.len());
                        let masked =
                            parse(&line1.replace(word, &mask), &line2.replace(word, &mask))
                                .err()
                                .map(|e| e.to_string())
                                .unwrap_or_default();
                        assert!(
                            masked.contains(word),
                            "the error message repeats input {word:?}: {message}"
                        );
                    }
                }
            }
        }
    }
}
