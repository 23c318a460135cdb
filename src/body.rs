//! HTTP answers read with a bound: a proxy's page, a wrong base URL or a
//! server that misbehaves cannot make the engine hold megabytes it never
//! needed. One reader for the Graph API client, the connect flow and the
//! embeddings client.

/// What was read of an answer's body.
#[derive(Debug)]
pub struct Capped {
    /// At most the cap's bytes, from the start.
    pub bytes: Vec<u8>,
    /// Whether that is the whole body (false: more came, left unread).
    pub whole: bool,
}

/// Reads `response`'s body up to `cap` bytes; an error when the connection
/// was cut before the body ended (or before the cap was reached).
pub async fn read(mut response: reqwest::Response, cap: usize) -> Result<Capped, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = cap - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(Capped {
                bytes,
                whole: false,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Capped { bytes, whole: true })
}
