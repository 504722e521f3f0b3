//! `slipway lb ...`: the edge proxy as seen from outside, for teams who keep HAProxy.

use super::client::Client;
use super::error::Exit;
use reqwest::Method;

/// `slipway lb haproxy-config`: prints an HAProxy 2.6 configuration equivalent to the
/// proxy's current routes (GET /api/v1/lb/haproxy.cfg) on stdout.
pub(crate) async fn haproxy_config(client: &Client) -> anyhow::Result<Exit> {
    let resp = client
        .send(client.request(Method::GET, "/api/v1/lb/haproxy.cfg"))
        .await?;
    let text = resp.text().await?;
    print!("{text}");
    Ok(Exit::Success)
}
