//! The tessera binary.
#![forbid(unsafe_code)]

mod server_cmds;

fn main() {
    let _ = (server_cmds::serve, server_cmds::user, server_cmds::client, server_cmds::key_rotate);
}
