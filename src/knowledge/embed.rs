//! Embeddings from the assistant's OpenAI-compatible server: `POST
//! {base_url}/embeddings` with `{"model", "input": [...]}`, answered with
//! `{"data": [{"index", "embedding": [...]}]}`. Passages are embedded when
//! their document is added (the vectors are stored with it); a question
//! is embedded per turn.

use std::time::Duration;

use serde_json::{json, Value};

use super::KnowledgeError;

/// Inputs per request.
/// Longest embeddings answer read, in bytes (a batch of large vectors is a
/// few MiB).
const MAX_ANSWER: usize = 64 * 1024 * 1024;
const BATCH: usize = 64;

pub struct Embedder {
    client: reqwest::Client,
    url: String,
    model: String,
    key: Option<String>,
}

impl Embedder {
    pub fn new(
        base_url: &str,
        model: &str,
        key: Option<String>,
        timeout: Duration,
    ) -> Result<Self, KnowledgeError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .build()
            .map_err(|e| KnowledgeError::Embeddings(e.to_string()))?;
        Ok(Self {
            client,
            url: format!("{}/embeddings", base_url.trim_end_matches('/')),
            model: model.to_string(),
            key,
        })
    }

    /// One vector per text, in order.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, KnowledgeError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            out.extend(self.batch(batch).await?);
        }
        Ok(out)
    }

    async fn batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, KnowledgeError> {
        let fail = |m: String| KnowledgeError::Embeddings(m);
        let mut call = self
            .client
            .post(&self.url)
            .json(&json!({"model": self.model, "input": texts}));
        if let Some(key) = &self.key {
            call = call.bearer_auth(key);
        }
        let response = call
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        let status = response.status();
        let read = crate::body::read(response, MAX_ANSWER)
            .await
            .map_err(|e| fail(format!("the answer was cut: {}", e.without_url())))?;
        if !read.whole {
            return Err(fail("the answer is too large".into()));
        }
        let bytes = read.bytes;
        if matches!(status.as_u16(), 401 | 403) {
            // Not the server's words: some echo the key they refused.
            return Err(fail(format!(
                "HTTP {}: the embeddings server refused the API key",
                status.as_u16()
            )));
        }
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| fail(format!("the answer is not JSON: {e}")))?;
        if !status.is_success() {
            // The server's own words, cut short (they reach the admin API).
            let message: String = body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Err(fail(format!("HTTP {}: {}", status.as_u16(), message)));
        }
        let data = body["data"]
            .as_array()
            .ok_or_else(|| fail("no data in the answer".into()))?;
        let mut vectors = vec![Vec::new(); texts.len()];
        for (position, item) in data.iter().enumerate() {
            let i = item["index"].as_u64().map_or(position, |i| i as usize);
            let v: Vec<f32> = item["embedding"]
                .as_array()
                .ok_or_else(|| fail("an item has no embedding".into()))?
                .iter()
                .map(|x| x.as_f64().unwrap_or(0.0) as f32)
                .collect();
            if let Some(slot) = vectors.get_mut(i) {
                *slot = normalized(v);
            }
        }
        if vectors.iter().any(Vec::is_empty) {
            return Err(fail("an input got no embedding".into()));
        }
        Ok(vectors)
    }
}

/// `v` scaled to length 1 (so a dot product is the cosine).
pub fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that refuses the key and echoes it back in its message:
    /// the error says it was refused, never the key.
    #[tokio::test]
    async fn a_refused_key_is_never_repeated_in_the_error() {
        let app = axum::Router::new().route(
            "/v1/embeddings",
            axum::routing::post(|| async {
                (
                    axum::http::StatusCode::UNAUTHORIZED,
                    axum::Json(
                        json!({"error": {"message": "Incorrect API key provided: sk-secret-123"}}),
                    ),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let embedder = Embedder::new(
            &format!("http://{addr}/v1"),
            "e",
            Some("sk-secret-123".into()),
            Duration::from_secs(5),
        )
        .unwrap();
        let e = embedder
            .embed(&["hi".to_string()])
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("refused the API key"), "{e}");
        assert!(!e.contains("sk-secret"), "{e}");
    }
}
