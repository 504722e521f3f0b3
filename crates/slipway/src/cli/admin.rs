//! Arguments and dispatch of the identity commands: `login`, `logout`, `whoami`, `users`,
//! `tokens`, `audit`, `secrets` and `policies`. Each takes the shared [`ClientOpts`].

use auth::Role;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};
use std::process::ExitCode;

use super::client::Client;
use super::secrets::{self, PoliciesCommand, SecretsCommand};
use super::{ClientOpts, Exit, audit, error, session, tokens, users};

/// `--role` values: the server's roles, lowest first.
fn role_parser() -> impl TypedValueParser<Value = Role> {
    PossibleValuesParser::new(Role::ALL.map(Role::as_str)).try_map(|s| s.parse::<Role>())
}

/// `slipway login`: store an API token for a server.
#[derive(Args, Debug)]
pub(crate) struct LoginArgs {
    /// User to log in as [default: asked for, else `admin`; with --password-stdin `admin`].
    #[arg(long, value_name = "NAME")]
    pub(super) user: Option<String>,
    /// Read the password from standard input (one trailing newline is dropped).
    #[arg(long)]
    pub(super) password_stdin: bool,
    /// Name of the token to create [default: slipway-cli@<hostname>].
    #[arg(long, value_name = "NAME")]
    pub(super) token_name: Option<String>,
    // Last, so that the options above keep the default help heading.
    #[command(flatten)]
    pub(super) opts: ClientOpts,
}

/// Commands without arguments of their own: `logout`, `whoami`.
#[derive(Args, Debug)]
pub(crate) struct PlainArgs {
    #[command(flatten)]
    pub(super) opts: ClientOpts,
}

/// `slipway users ...`.
#[derive(Args, Debug)]
pub(crate) struct UsersArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Subcommand, Debug)]
pub(super) enum UsersCommand {
    /// List users with their role and state (admins only).
    List,
    /// Create a user.
    ///
    /// Without --password-stdin the user has no password: it then needs a token from an
    /// admin (`slipway tokens create --user NAME`) or a password (`slipway users passwd`).
    Add {
        /// User name: 1-64 letters, digits, `.`, `_`, `-` or `@`.
        name: String,
        /// The user's role.
        #[arg(long, value_parser = role_parser())]
        role: Role,
        /// Read the password from standard input (one trailing newline is dropped).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's role.
    SetRole {
        /// User name.
        name: String,
        /// The new role.
        #[arg(value_parser = role_parser())]
        role: Role,
    },
    /// Set a user's password (prompted twice without echo, unless --password-stdin).
    ///
    /// Admins may set any password; other users only their own.
    Passwd {
        /// User name.
        name: String,
        /// Read the password from standard input (one trailing newline is dropped).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: its password and tokens stop working until it is enabled.
    Disable {
        /// User name.
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// User name.
        name: String,
    },
    /// Delete a user and revoke its tokens.
    Delete {
        /// User name.
        name: String,
    },
}

/// `slipway tokens ...`.
#[derive(Args, Debug)]
pub(crate) struct TokensArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(Subcommand, Debug)]
pub(super) enum TokensCommand {
    /// List your API tokens (admins: everyone's with --all).
    List {
        /// Tokens of all users (admins only).
        #[arg(long)]
        all: bool,
    },
    /// Create an API token and print it on stdout (it is shown only once).
    ///
    /// Use it with `--token` or `SLIPWAY_TOKEN`, e.g.
    /// `export SLIPWAY_TOKEN=$(slipway tokens create --name ci)`.
    Create {
        /// A name to recognise the token by [default: api].
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Days until the token expires (server default 90, at most 366).
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<f64>,
        /// Create the token for this user instead of yourself (admins only).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// Revoke a token by id (see `slipway tokens list`).
    Revoke {
        /// Token id.
        id: String,
    },
}

/// `slipway audit`: the audit log, newest first.
#[derive(Args, Debug)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    pub(super) filter: audit::Filter,
    #[command(flatten)]
    pub(super) opts: ClientOpts,
}

/// `slipway secrets ...`.
#[derive(Args, Debug)]
pub(crate) struct SecretsArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: SecretsCommand,
}

/// `slipway policies ...`.
#[derive(Args, Debug)]
pub(crate) struct PoliciesArgs {
    #[command(flatten)]
    opts: ClientOpts,
    #[command(subcommand)]
    command: PoliciesCommand,
}

/// Builds the client and runs `f` with it; reports errors and maps the exit code.
async fn with_client<F>(opts: &ClientOpts, f: F) -> ExitCode
where
    F: AsyncFnOnce(&Client) -> anyhow::Result<Exit>,
{
    let result = match Client::new(opts) {
        Ok(client) => f(&client).await,
        Err(e) => Err(e),
    };
    error::finish(result).into()
}

/// Runs `slipway login`.
pub(crate) async fn login(args: LoginArgs) -> ExitCode {
    error::finish(session::login(&args).await).into()
}

/// Runs `slipway logout`.
pub(crate) async fn logout(args: PlainArgs) -> ExitCode {
    error::finish(session::logout(&args.opts).await).into()
}

/// Runs `slipway whoami`.
pub(crate) async fn whoami(args: PlainArgs) -> ExitCode {
    let output = args.opts.output;
    with_client(&args.opts, async |c| session::whoami(c, output).await).await
}

/// Runs `slipway users ...`.
pub(crate) async fn users(args: UsersArgs) -> ExitCode {
    let output = args.opts.output;
    with_client(&args.opts, async |c| {
        users::run(c, output, args.command).await
    })
    .await
}

/// Runs `slipway tokens ...`.
pub(crate) async fn tokens(args: TokensArgs) -> ExitCode {
    let output = args.opts.output;
    with_client(&args.opts, async |c| {
        tokens::run(c, output, args.command).await
    })
    .await
}

/// Runs `slipway audit`.
pub(crate) async fn audit(args: AuditArgs) -> ExitCode {
    let output = args.opts.output;
    with_client(&args.opts, async |c| {
        audit::run(c, output, &args.filter).await
    })
    .await
}

/// Runs `slipway secrets ...`.
pub(crate) async fn secrets(args: SecretsArgs) -> ExitCode {
    let output = args.opts.output;
    with_client(&args.opts, async |c| {
        secrets::run(c, output, args.command).await
    })
    .await
}

/// Runs `slipway policies ...`.
pub(crate) async fn policies(args: PoliciesArgs) -> ExitCode {
    let output = args.opts.output;
    with_client(&args.opts, async |c| {
        secrets::policies(c, output, args.command).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Output;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct TestCli {
        #[command(subcommand)]
        cmd: TestCmd,
    }

    #[derive(Subcommand)]
    enum TestCmd {
        Login(LoginArgs),
        Logout(PlainArgs),
        Whoami(PlainArgs),
        Users(UsersArgs),
        Tokens(TokensArgs),
        Audit(AuditArgs),
        Secrets(SecretsArgs),
        Policies(PoliciesArgs),
    }

    fn parse(args: &[&str]) -> Result<TestCmd, clap::Error> {
        let argv = std::iter::once("slipway").chain(args.iter().copied());
        TestCli::try_parse_from(argv).map(|c| c.cmd)
    }

    fn ok(args: &[&str]) -> TestCmd {
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn client_options_are_global_on_every_group() {
        let argv = [
            "users",
            "list",
            "-o",
            "json",
            "--server",
            "http://h:1",
            "--token",
            "t",
        ];
        let TestCmd::Users(u) = ok(&argv) else {
            panic!("not users")
        };
        assert_eq!(u.opts.output, Output::Json);
        assert_eq!(
            (u.opts.server.as_str(), u.opts.token.as_deref()),
            ("http://h:1", Some("t"))
        );
        let TestCmd::Whoami(w) = ok(&["whoami", "--output", "json"]) else {
            panic!("not whoami")
        };
        assert_eq!(w.opts.output, Output::Json);
        for argv in [
            &["tokens", "list", "--all", "-o", "json"][..],
            &["secrets", "list", "--server", "http://h:2"],
            &["policies", "show", "-o", "json"],
            &["audit", "-o", "json", "--limit", "5"],
            &["logout", "--server", "http://h:3"],
        ] {
            ok(argv);
        }
    }

    #[test]
    fn roles_are_checked_by_the_parser() {
        let TestCmd::Users(u) = ok(&["users", "add", "bob", "--role", "deployer"]) else {
            panic!("not users")
        };
        assert!(matches!(
            u.command,
            UsersCommand::Add {
                role: Role::Deployer,
                password_stdin: false,
                ..
            }
        ));
        let TestCmd::Users(u) = ok(&["users", "set-role", "bob", "admin"]) else {
            panic!("not users")
        };
        assert!(matches!(
            u.command,
            UsersCommand::SetRole {
                role: Role::Admin,
                ..
            }
        ));
        assert!(parse(&["users", "add", "bob", "--role", "root"]).is_err());
        assert!(parse(&["users", "add", "bob"]).is_err());
    }

    #[test]
    fn login_tokens_audit_and_secret_flags() {
        let TestCmd::Login(l) = ok(&["login", "--user", "ci", "--password-stdin"]) else {
            panic!("not login")
        };
        assert_eq!(l.user.as_deref(), Some("ci"));
        assert!(l.password_stdin && l.token_name.is_none());
        let TestCmd::Tokens(t) = ok(&["tokens", "create", "--expires-in-days", "7"]) else {
            panic!("not tokens")
        };
        assert!(matches!(
            t.command,
            TokensCommand::Create {
                expires_in_days: Some(7.0),
                ..
            }
        ));
        let TestCmd::Audit(a) = ok(&["audit", "--user", "bob", "--app", "/web", "--since", "1h"])
        else {
            panic!("not audit")
        };
        assert_eq!(a.filter.user.as_deref(), Some("bob"));
        assert_eq!(a.filter.since.as_deref(), Some("1h"));
        assert!(parse(&["secrets", "set", "db", "--from-file", "f", "--value-stdin"]).is_err());
        // A value is never an argument.
        assert!(parse(&["secrets", "set", "db", "s3cret"]).is_err());
        assert!(parse(&["policies", "set"]).is_err());
        ok(&["policies", "set", "-f", "-"]);
    }

    #[test]
    fn help_renders() {
        TestCli::command().debug_assert();
    }
}
