use super::segments;

#[test]
fn version_prefix_is_optional() {
    assert_eq!(segments("/v21.0/PAGE/messages"), ["PAGE", "messages"]);
    assert_eq!(segments("/PAGE/messages"), ["PAGE", "messages"]);
    assert_eq!(
        segments("/v19/me/messenger_profile"),
        ["me", "messenger_profile"]
    );
}
