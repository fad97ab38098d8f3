//! Walking a paginated list endpoint, driven by a pagination preset from the spec.
//!
//! The pager hands out each page's records together with the request for the following page.
//! That request is plain data, so a sync stores it as its checkpoint after every page and a
//! later run resumes exactly there with [`Pager::resume`].

use std::collections::HashSet;

use serde_json::Value;

use crate::context::{Context, HttpRequest};
use crate::error::{ErrorKind, ProviderError};
use crate::spec::PaginationSpec;

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<Value>,
    /// The request for the next page; `None` on the last page.
    pub next: Option<HttpRequest>,
}

pub struct Pager<'a> {
    ctx: &'a dyn Context,
    preset: &'a PaginationSpec,
    next: Option<HttpRequest>,
    /// Every page request made so far, to stop a provider that links back to an earlier page.
    seen: HashSet<String>,
}

impl<'a> Pager<'a> {
    /// Starts at the first page. The page size the integration chose for the run
    /// ([`RunInfo::page_size`](crate::RunInfo)) replaces any the request sets, capped at the
    /// preset's `max_page_size`; otherwise the preset's page size is added unless the request
    /// sets one. Later pages keep the first one's size: next links carry it.
    pub fn new(ctx: &'a dyn Context, preset: &'a PaginationSpec, mut first: HttpRequest) -> Self {
        if let Some(param) = preset.page_size_param() {
            match ctx.run_info().page_size {
                Some(chosen) => {
                    let size = preset.max_page_size().map_or(chosen, |max| chosen.min(max));
                    first.query.retain(|(name, _)| name != param);
                    first = first.query(param, size.to_string());
                }
                None => {
                    if let Some((_, size)) = preset.page_size()
                        && !first.has_query(param)
                    {
                        first = first.query(param, size.to_string());
                    }
                }
            }
        }
        Self::resume(ctx, preset, first)
    }

    /// Continues from a request that an earlier page returned as `next`.
    pub fn resume(ctx: &'a dyn Context, preset: &'a PaginationSpec, next: HttpRequest) -> Self {
        Pager {
            ctx,
            preset,
            next: Some(next),
            seen: HashSet::new(),
        }
    }

    /// Fetches the next page, or `None` once the last page was returned.
    pub async fn next_page(&mut self) -> Result<Option<Page>, ProviderError> {
        let Some(request) = self.next.take() else {
            return Ok(None);
        };
        let key = format!("{} {}?{:?}", request.method, request.url, request.query);
        if !self.seen.insert(key) {
            return Err(ProviderError::new(
                ErrorKind::Pagination,
                format!(
                    "pagination loops: the provider pointed back to `{}`, a page already fetched",
                    request.url
                ),
            ));
        }
        let mut body = self.ctx.get_json(request.clone()).await?;
        let next = self.next_request(&request, &body);
        // Taken out of the body, not cloned: a page of 1,000 records is a deep tree.
        let records = match body
            .pointer_mut(self.preset.records_pointer())
            .map(Value::take)
        {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => {
                return Err(ProviderError::decode(format!(
                    "`{}` in the response is not an array of records",
                    self.preset.records_pointer()
                )));
            }
        };
        self.next = next.clone();
        Ok(Some(Page { records, next }))
    }

    fn next_request(&self, current: &HttpRequest, body: &Value) -> Option<HttpRequest> {
        match self.preset {
            PaginationSpec::NextLink { next_link, .. } => {
                let link = non_empty_str(pointer(body, next_link))?;
                Some(HttpRequest {
                    url: link.to_owned(),
                    query: Vec::new(),
                    ..current.clone()
                })
            }
            PaginationSpec::Cursor {
                cursor,
                cursor_param,
                ..
            } => {
                let cursor = non_empty_str(pointer(body, cursor))?;
                let mut next = current.clone();
                next.query.retain(|(name, _)| name != cursor_param);
                Some(next.query(cursor_param.clone(), cursor))
            }
        }
    }
}

/// Looks up a JSON pointer; the empty pointer is the whole document.
fn pointer<'v>(body: &'v Value, pointer: &str) -> Option<&'v Value> {
    body.pointer(pointer)
}

fn non_empty_str(value: Option<&Value>) -> Option<&str> {
    value?.as_str().filter(|s| !s.is_empty())
}
