//! Tests of the shell, the sign-in page and helpers shared by the page tests.

use super::*;

/// A viewer for rendering tests.
pub(crate) fn viewer(role: auth::Role) -> Viewer {
    Viewer {
        session: {
            let s = Sessions::default();
            let id = s.create("dana", role, None, None);
            s.get(&id).expect("session")
        },
        session_id: "sid".into(),
        host: "127.0.0.1:8080".into(),
        origin: None,
        peer: SocketAddr::from(([127, 0, 0, 1], 5555)),
    }
}

/// Heading levels in document order.
fn headings(html: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = html.as_bytes();
    for i in 0..b.len().saturating_sub(3) {
        if b[i] == b'<'
            && b[i + 1] == b'h'
            && b[i + 2].is_ascii_digit()
            && matches!(b[i + 3], b'>' | b' ')
        {
            out.push(b[i + 2] - b'0');
        }
    }
    out
}

#[test]
fn the_shell_has_navigation_by_role_and_a_csrf_protected_sign_out() {
    let dev = viewer(auth::Role::Developer);
    let html = layout::page(
        Some(&dev),
        Nav::Pipelines,
        "Pipelines",
        html! { h2 { "x" } },
    )
    .into_string();
    assert!(
        html.contains("<a href=\"/ui/pipelines\" aria-current=\"page\">"),
        "{html}"
    );
    assert!(
        html.contains("href=\"/ui/audit\""),
        "developers see the audit log"
    );
    assert!(html.contains(&format!("name=\"csrf\" value=\"{}\"", dev.session.csrf)));
    assert!(html.contains("<meta name=\"viewport\""));
    let viewer_html = layout::page(
        Some(&viewer(auth::Role::Viewer)),
        Nav::Overview,
        "O",
        html! {},
    )
    .into_string();
    assert!(
        !viewer_html.contains("href=\"/ui/audit\""),
        "viewers do not"
    );
    assert_eq!(headings(&html), [1, 2]);
}

#[test]
fn the_sign_in_page_labels_its_fields() {
    let html = login_page(
        "tok",
        "/ui/runs/1",
        "dana",
        Some("Wrong user name or password."),
    )
    .into_string();
    assert!(html.contains("<label for=\"user\">") && html.contains("<label for=\"password\">"));
    assert!(html.contains("value=\"tok\"") && html.contains("value=\"/ui/runs/1\""));
    assert!(html.contains("role=\"alert\""));
    assert!(!html.contains("Sign out"));
}

#[test]
fn sign_in_goes_back_to_console_pages_only() {
    let next = |q: &str| next_path(&Form::parse(q));
    assert_eq!(next("next=%2Fui%2Fruns%2F1"), "/ui/runs/1");
    for bad in [
        "next=https://evil",
        "next=//evil",
        "next=/ui//evil",
        "next=/api/v1/users",
        "",
    ] {
        assert_eq!(next(bad), "/ui/", "{bad}");
    }
}

#[test]
fn base64_and_loopback() {
    assert_eq!(base64_encode(b"dana:pw"), "ZGFuYTpwdw==");
    assert_eq!(base64_encode(b"ab"), "YWI=");
    assert_eq!(base64_encode(b"abc"), "YWJj");
    assert!(
        loopback_host("127.0.0.1:8080") && loopback_host("localhost") && loopback_host("[::1]:80")
    );
    assert!(!loopback_host("example.com:8080"));
}
