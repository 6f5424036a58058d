//! Follow a sniffer event stream, like `tail -f` over every sensor that writes to it: print
//! each record (one JSON line) as it arrives, optionally only those of one type.
//!
//! ```text
//! cargo run --example follow_events -- redis://collector:6379 sniffer [transaction|file|flow|stats]
//! ```
//!
//! It starts at the end of the stream (`$`); give `FROM=0` in the environment to read it
//! from the beginning. Each entry of the stream has one field, `event`, holding the JSON.

use redis::{
    Commands as _,
    streams::{StreamReadOptions, StreamReadReply},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(key)) = (args.next(), args.next()) else {
        eprintln!("usage: follow_events redis://HOST:PORT KEY [TYPE]");
        std::process::exit(2);
    };
    let only = args.next().map(|t| format!(r#""type":"{t}""#));
    let mut con = redis::Client::open(url)?.get_connection()?;
    let mut last = std::env::var("FROM").unwrap_or_else(|_| "$".to_owned());
    // Wait for new entries without a timeout, up to 1000 at a time.
    let options = StreamReadOptions::default().block(0).count(1000);
    loop {
        let reply: StreamReadReply = con.xread_options(&[&key], &[&last], &options)?;
        for stream in reply.keys {
            for entry in stream.ids {
                last.clone_from(&entry.id);
                let Some(event) = entry.get::<String>("event") else {
                    continue;
                };
                if only.as_ref().is_none_or(|t| event.contains(t.as_str())) {
                    println!("{event}");
                }
            }
        }
    }
}
