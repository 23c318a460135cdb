//! The Graph API calls of the connect flow: the code exchanged for a user
//! token, that token for a long-lived one (`fb_exchange_token`), the
//! user's Pages with their tokens (`/me/accounts`), and the app subscribed
//! to each Page's webhook fields (`POST /{page-id}/subscribed_apps`). Tokens
//! travel as query parameters, as Meta documents; no URL is ever logged.

use serde::Deserialize;

use crate::config::Secret;

/// The webhook fields a Page is subscribed to (messages and what reports
/// on them, postbacks, referrals, and the feed for comments).
pub const PAGE_FIELDS: &str =
    "messages,messaging_postbacks,message_deliveries,message_reads,message_echoes,messaging_referrals,feed";

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("Meta did not answer: {0}")]
    Unreachable(String),
    #[error("Meta refused: {0}")]
    Refused(String),
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Page {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub access_token: Secret,
    #[serde(default)]
    pub instagram_business_account: Option<Linked>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Linked {
    pub id: String,
}

/// A WhatsApp phone number of a WhatsApp Business Account.
#[derive(Debug, Clone, Deserialize)]
pub struct Number {
    pub id: String,
    #[serde(default)]
    pub display_phone_number: String,
    #[serde(default)]
    pub verified_name: String,
    #[serde(skip)]
    pub waba: String,
}

#[derive(Deserialize)]
struct Debugged {
    data: DebuggedData,
}

#[derive(Deserialize)]
struct DebuggedData {
    #[serde(default)]
    granular_scopes: Vec<Granular>,
}

#[derive(Deserialize)]
struct Granular {
    scope: String,
    #[serde(default)]
    target_ids: Vec<String>,
}

/// A Page as `/me/accounts` lists it: without a token when the user may
/// not act for it.
#[derive(Deserialize)]
struct ListedPage {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    access_token: Option<Secret>,
    #[serde(default)]
    instagram_business_account: Option<Linked>,
}

/// One page of a Graph API list.
#[derive(Deserialize)]
struct Listing<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
}

/// Pages of a Graph API list read, at most.
const MAX_PAGES: usize = 10;
/// Longest Graph API answer read, in bytes.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

pub struct MetaClient<'a> {
    pub http: &'a reqwest::Client,
    pub graph: &'a str,
    pub app_id: &'a str,
    pub app_secret: &'a str,
}

impl MetaClient<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.graph.trim_end_matches('/'))
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, MetaError> {
        let r = self
            .http
            .get(self.url(path))
            .query(query)
            .send()
            .await
            .map_err(|e| MetaError::Unreachable(e.without_url().to_string()))?;
        read(r).await
    }

    /// The user token for an authorization `code`.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<Secret, MetaError> {
        let t: TokenAnswer = self
            .get(
                "oauth/access_token",
                &[
                    ("client_id", self.app_id),
                    ("client_secret", self.app_secret),
                    ("redirect_uri", redirect_uri),
                    ("code", code),
                ],
            )
            .await?;
        Ok(Secret::new(t.access_token))
    }

    /// A long-lived token (about 60 days) for a short-lived one.
    pub async fn long_lived(&self, short: &Secret) -> Result<Secret, MetaError> {
        let t: TokenAnswer = self
            .get(
                "oauth/access_token",
                &[
                    ("grant_type", "fb_exchange_token"),
                    ("client_id", self.app_id),
                    ("client_secret", self.app_secret),
                    ("fb_exchange_token", short.expose()),
                ],
            )
            .await?;
        Ok(Secret::new(t.access_token))
    }

    /// The Pages the user manages, each with its Page token (long-lived
    /// when the user token is) and linked Instagram account.
    /// Pages the user may not act for (no token) are left out; the list's
    /// `paging.next` is followed.
    pub async fn pages(&self, user: &Secret) -> Result<Vec<Page>, MetaError> {
        let listed: Vec<ListedPage> = self
            .list(
                "me/accounts",
                &[
                    ("fields", "id,name,access_token,instagram_business_account"),
                    ("limit", "100"),
                    ("access_token", user.expose()),
                ],
            )
            .await?;
        Ok(listed
            .into_iter()
            .filter_map(|p| {
                Some(Page {
                    access_token: p.access_token.filter(|t| !t.is_empty())?,
                    id: p.id,
                    name: p.name,
                    instagram_business_account: p.instagram_business_account,
                })
            })
            .collect())
    }

    /// Every item of a Graph API list, its `paging.next` followed for at
    /// most [`MAX_PAGES`] pages, and only on the Graph API's own host (the
    /// link carries the token).
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, MetaError> {
        let mut answer: Listing<T> = self.get(path, query).await?;
        let mut all = Vec::new();
        for read_pages in 1.. {
            all.append(&mut answer.data);
            let Some(next) = answer.paging.and_then(|p| p.next) else {
                break;
            };
            if read_pages == MAX_PAGES {
                tracing::warn!(
                    path,
                    pages = MAX_PAGES,
                    "A Graph API list is longer than the engine reads; the rest is left out"
                );
                break;
            }
            if !self.same_host(&next) {
                return Err(MetaError::Refused(
                    "a list's next page is on another host".into(),
                ));
            }
            let r = self
                .http
                .get(next)
                .send()
                .await
                .map_err(|e| MetaError::Unreachable(e.without_url().to_string()))?;
            answer = read(r).await?;
        }
        Ok(all)
    }

    /// Whether `url` is on the Graph API's scheme, host and port.
    fn same_host(&self, url: &str) -> bool {
        let origin = |u: &str| {
            reqwest::Url::parse(u).ok().map(|u| {
                (
                    u.scheme().to_string(),
                    u.host_str().map(str::to_string),
                    u.port_or_known_default(),
                )
            })
        };
        origin(url).is_some_and(|o| Some(o) == origin(self.graph))
    }

    /// The WhatsApp numbers the user's token may use: the WhatsApp
    /// Business Accounts its `whatsapp_business_management` scope names
    /// (`debug_token`'s `granular_scopes`), then their phone numbers.
    pub async fn whatsapp_numbers(&self, user: &Secret) -> Result<Vec<Number>, MetaError> {
        let app_token = format!("{}|{}", self.app_id, self.app_secret);
        let d: Debugged = self
            .get(
                "debug_token",
                &[("input_token", user.expose()), ("access_token", &app_token)],
            )
            .await?;
        let mut wabas: Vec<String> = d
            .data
            .granular_scopes
            .into_iter()
            .filter(|g| g.scope == "whatsapp_business_management")
            .flat_map(|g| g.target_ids)
            .collect();
        wabas.sort();
        wabas.dedup();
        let mut numbers = Vec::new();
        for waba in wabas {
            let listed: Vec<Number> = self
                .list(
                    &format!("{waba}/phone_numbers"),
                    &[
                        ("fields", "id,display_phone_number,verified_name"),
                        ("access_token", user.expose()),
                    ],
                )
                .await?;
            numbers.extend(listed.into_iter().map(|mut x| {
                x.waba = waba.clone();
                x
            }));
        }
        Ok(numbers)
    }

    /// Subscribes the app to a WhatsApp Business Account's webhooks.
    pub async fn subscribe_waba(&self, waba: &str, user: &Secret) -> Result<(), MetaError> {
        self.subscribe_to(waba, &[("access_token", user.expose())])
            .await
    }

    /// Subscribes the app to a Page's webhook fields.
    pub async fn subscribe(&self, page: &Page) -> Result<(), MetaError> {
        self.subscribe_to(
            &page.id,
            &[
                ("subscribed_fields", PAGE_FIELDS),
                ("access_token", page.access_token.expose()),
            ],
        )
        .await
    }

    async fn subscribe_to(&self, node: &str, query: &[(&str, &str)]) -> Result<(), MetaError> {
        let r = self
            .http
            .post(self.url(&format!("{node}/subscribed_apps")))
            .query(query)
            .send()
            .await
            .map_err(|e| MetaError::Unreachable(e.without_url().to_string()))?;
        let answer: serde_json::Value = read(r).await?;
        if answer["success"] == true {
            Ok(())
        } else {
            Err(MetaError::Refused(
                "the subscription was not confirmed".into(),
            ))
        }
    }
}

async fn read<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T, MetaError> {
    let status = r.status();
    let read = crate::body::read(r, MAX_ANSWER)
        .await
        .map_err(|e| MetaError::Unreachable(e.without_url().to_string()))?;
    if !read.whole {
        return Err(MetaError::Refused("an answer too large to read".into()));
    }
    let body = read.bytes;
    if !status.is_success() {
        // Meta's own words (read by the one place that reads Meta's
        // errors), never the request: it carries tokens.
        let refusal = crate::channels::SendError::from_response(status.as_u16(), &body);
        return Err(MetaError::Refused(refusal.message));
    }
    serde_json::from_slice(&body)
        .map_err(|_| MetaError::Refused("an answer it could not read".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_next_page_is_followed_on_the_graph_api_s_host_only() {
        let http = reqwest::Client::new();
        let client = MetaClient {
            http: &http,
            graph: "https://graph.facebook.com/v21.0",
            app_id: "1",
            app_secret: "s",
        };
        assert!(client.same_host("https://graph.facebook.com/v21.0/me/accounts?after=X"));
        assert!(client.same_host("https://graph.facebook.com:443/v22.0/me/accounts"));
        for other in [
            "https://evil.example/v21.0/me/accounts",
            "http://graph.facebook.com/v21.0/me/accounts",
            "https://graph.facebook.com.evil.example/x",
            "not a url",
        ] {
            assert!(!client.same_host(other), "{other}");
        }
    }
}
