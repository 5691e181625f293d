//! The TD3 MRZ reader (QC reads the MRZ back from the printed booklet) on arbitrary input: never
//! panics, and its error messages never repeat what was read (the MRZ holds the holder's name
//! and date of birth, which must not reach logs or error messages).
#![no_main]

use hallctl_jobs::mrz::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (line1, line2) = text.split_once('\n').unwrap_or((&text, ""));
    match parse(line1, line2) {
        Ok(fields) => {
            // A valid read has the shape of a TD3 MRZ.
            assert_eq!(line1.chars().count(), 44);
            assert_eq!(line2.chars().count(), 44);
            let _ = format!("{fields:?}");
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error lists at least one field");
            let message = errors.to_string();
            for line in [line1, line2] {
                // Any run of 6 or more letters of the input (a name) is not in the message.
                for word in line.split(|c: char| !c.is_ascii_alphabetic()) {
                    if word.len() >= 6 {
                        assert!(
                            !message.contains(word),
                            "the error message repeats input {word:?}: {message}"
                        );
                    }
                }
            }
        }
    }
});
