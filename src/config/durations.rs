//! Durations written `"off"` or as a duration (`auto_resume_after`).

use std::time::Duration;

/// A duration, or `"off"` for none (`auto_resume_after`).
pub(super) mod off_or_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim() == "off" {
            return Ok(None);
        }
        humantime::parse_duration(text.trim())
            .map(Some)
            .map_err(|e| {
                serde::de::Error::custom(format!("{e} (a duration like \"24h\", or \"off\")"))
            })
    }

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::off_or_duration_text(*v))
    }
}

/// `auto_resume_after` as written in a config: `"off"`, or the duration
/// in its largest whole unit (`"24h"`, `"90m"`, `"45s"`, `"1500ms"`).
pub fn off_or_duration_text(v: Option<Duration>) -> String {
    let Some(d) = v else {
        return "off".into();
    };
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        _ if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        _ if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        _ if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        _ => format!("{ms}ms"),
    }
}
