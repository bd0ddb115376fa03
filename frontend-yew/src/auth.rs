//! The server's API token, when it has one: asked once (the form appears when any call gets 401), kept in
//! `localStorage`, sent as `Authorization: Bearer` on every fetch and as `?token=` on the WebSocket (a
//! browser cannot set headers there). No cookie, so no other site's page can make the browser send it.

use std::cell::RefCell;

use wasm_bindgen::JsCast;
use yew::prelude::*;

/// The `localStorage` key.
const KEY: &str = "agentstream.token";

thread_local! {
    /// What to do when the server says 401 (the app shows the form).
    static ON_UNAUTHORIZED: RefCell<Option<Callback<()>>> = const { RefCell::new(None) };
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

/// The stored token.
pub fn token() -> Option<String> {
    storage()
        .and_then(|s| s.get_item(KEY).ok().flatten())
        .filter(|t| !t.is_empty())
}

/// The `Authorization` header's value, when there is a token.
pub fn authorization() -> Option<String> {
    token().map(|t| format!("Bearer {t}"))
}

/// `?token=…` for the WebSocket's URL, or nothing.
pub fn ws_query() -> String {
    token().map_or_else(String::new, |t| {
        format!("?token={}", String::from(js_sys::encode_uri_component(&t)))
    })
}

/// Sets what a 401 triggers.
pub fn on_unauthorized(callback: Callback<()>) {
    ON_UNAUTHORIZED.with(|c| *c.borrow_mut() = Some(callback));
}

/// The server refused the token (or its absence).
pub fn unauthorized() {
    if let Some(callback) = ON_UNAUTHORIZED.with(|c| c.borrow().clone()) {
        callback.emit(());
    }
}

/// Asks for the token; on submit it is stored and the page reloads, so that every request and the
/// socket start over with it.
#[function_component(TokenForm)]
pub fn token_form() -> Html {
    let input = use_node_ref();
    let refused = token().is_some();
    let onsubmit = {
        let input = input.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some(value) = input
                .cast::<web_sys::HtmlInputElement>()
                .map(|i| i.value().trim().to_owned())
                .filter(|v| !v.is_empty())
            else {
                return;
            };
            if let Some(s) = storage() {
                let _ = s.set_item(KEY, &value);
            }
            if let Some(w) = web_sys::window() {
                let _ = w.location().reload();
            }
        })
    };
    let focus = input.clone();
    use_effect_with((), move |_| {
        if let Some(el) = focus
            .get()
            .and_then(|n| n.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = el.focus();
        }
    });
    html! {
        <form class="launch token-form" data-testid="token-form" onsubmit={onsubmit}>
            <h2>{ "API token" }</h2>
            <p>{ "This server needs its API token (setting auth.token). It is kept in this browser." }</p>
            if refused {
                <div class="field-error" data-testid="token-error">{ "The stored token was refused." }</div>
            }
            <label>{ "Token" }
                <input data-testid="token-input" type="password" autocomplete="off" ref={input} />
            </label>
            <button type="submit" data-testid="token-submit">{ "Continue" }</button>
        </form>
    }
}
