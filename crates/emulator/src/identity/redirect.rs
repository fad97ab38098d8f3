//! Sending a sign-in result back to the app: in the query (default), in the fragment, or as an
//! auto-submitting form (`response_mode=form_post`).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;
use url::form_urlencoded;

use super::error::Aadsts;
use super::pages;
use crate::observe::RequestContext;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

impl ResponseMode {
    pub fn parse(raw: Option<&str>) -> Option<ResponseMode> {
        match raw {
            None | Some("query") => Some(ResponseMode::Query),
            Some("fragment") => Some(ResponseMode::Fragment),
            Some("form_post") => Some(ResponseMode::FormPost),
            Some(_) => None,
        }
    }
}

/// Where and how a sign-in's result goes back to the app.
#[derive(Debug, Clone)]
pub struct ReplyTo {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    pub state: Option<String>,
}

impl ReplyTo {
    /// A reply carrying `params`, then `state`.
    pub fn with(&self, mut params: Vec<(&'static str, String)>) -> Redirect {
        params.extend(self.state.clone().map(|state| ("state", state)));
        Redirect {
            reply: self.clone(),
            params,
        }
    }

    pub fn error(&self, error: &str, aadsts: &Aadsts) -> Redirect {
        self.with(vec![
            ("error", error.to_owned()),
            (
                "error_description",
                aadsts.description(&RequestContext::current()),
            ),
            ("error_uri", aadsts.error_uri()),
        ])
    }
}

pub struct Redirect {
    reply: ReplyTo,
    params: Vec<(&'static str, String)>,
}

impl Redirect {
    fn encoded_params(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.params)
            .finish()
    }

    fn location(&self) -> String {
        let uri = &self.reply.redirect_uri;
        match (self.reply.mode, Url::parse(uri)) {
            (ResponseMode::Query, Ok(mut url)) => {
                url.query_pairs_mut().extend_pairs(&self.params);
                url.into()
            }
            (ResponseMode::Fragment, Ok(mut url)) => {
                url.set_fragment(Some(&self.encoded_params()));
                url.into()
            }
            // Registered URIs are validated, so this is only a fallback.
            (_, _) => format!("{uri}?{}", self.encoded_params()),
        }
    }
}

impl IntoResponse for Redirect {
    fn into_response(self) -> Response {
        if self.reply.mode == ResponseMode::FormPost {
            return pages::form_post(&self.reply.redirect_uri, &self.params);
        }
        (StatusCode::FOUND, [(header::LOCATION, self.location())]).into_response()
    }
}
