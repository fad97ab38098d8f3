//! The HTML the sign-in flow shows: Microsoft's error page, the consent page and the
//! auto-submitting `form_post` page. Plain markup; tests and scripted clients read it.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::error::Aadsts;
use crate::observe::RequestContext;

pub fn error_page(aadsts: &Aadsts, context: &RequestContext) -> Response {
    let body = format!(
        r#"<!DOCTYPE html>
<html><head><title>Sign in to your account</title></head>
<body>
<h1>Sign in</h1>
<div id="error">
<p>Sorry, but we're having trouble signing you in.</p>
<p id="aadsts">AADSTS{code}: {message}</p>
<dl>
<dt>Request Id</dt><dd id="request-id">{request_id}</dd>
<dt>Correlation Id</dt><dd id="correlation-id">{correlation_id}</dd>
<dt>Timestamp</dt><dd id="timestamp">{timestamp}</dd>
</dl>
</div>
</body></html>
"#,
        code = aadsts.code,
        message = escape(&aadsts.message),
        request_id = context.request_id,
        correlation_id = context.correlation_id,
        timestamp = context.timestamp.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
    );
    (StatusCode::BAD_REQUEST, Html(body)).into_response()
}

/// The page of an app with consent mode `page`. Each button posts `prompt` and `decision`.
pub fn consent_page(
    action: &str,
    prompt: &str,
    app_name: &str,
    user: &str,
    scopes: &[&str],
) -> Response {
    let permissions: String = scopes
        .iter()
        .map(|s| format!("<li>{}</li>\n", escape(s)))
        .collect();
    let body = format!(
        r#"<!DOCTYPE html>
<html><head><title>Permissions requested</title></head>
<body>
<h1>Permissions requested</h1>
<p><b>{app}</b> wants to access <b>{user}</b>:</p>
<ul>
{permissions}</ul>
<form method="post" action="{action}">
<input type="hidden" name="prompt" value="{prompt}">
<button type="submit" name="decision" value="accept">Accept</button>
<button type="submit" name="decision" value="decline">Decline</button>
</form>
</body></html>
"#,
        app = escape(app_name),
        user = escape(user),
        action = escape(action),
        prompt = escape(prompt),
    );
    Html(body).into_response()
}

/// `response_mode=form_post`: a form that posts the result to the app as soon as it loads.
pub fn form_post(action: &str, params: &[(&str, String)]) -> Response {
    let inputs: String = params
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                escape(name),
                escape(value)
            )
        })
        .collect();
    let body = format!(
        r#"<!DOCTYPE html>
<html><head><title>Working...</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{action}">
{inputs}<noscript><button type="submit">Continue</button></noscript>
</form>
</body></html>
"#,
        action = escape(action),
    );
    Html(body).into_response()
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}
