//! The configuration example in docs/agent.md parses and means what the doc says.

use std::path::Path;
use std::time::Duration;

#[test]
fn the_documented_example_parses() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/agent.md");
    let doc = std::fs::read_to_string(&doc_path).expect("docs/agent.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let len = doc[start..].find("```").expect("end of the block");
    // www-data exists on Debian; the names are looked up when the file is loaded.
    let config = airlock_agent::AgentConfig::parse(&doc_path, &doc[start..start + len])
        .expect("the documented example is a valid configuration");
    let app = &config.apps["myapp"];
    assert_eq!(app.target, "myapp/{version}/myapp.tar.gz");
    assert_eq!(app.schedule.interval, Duration::from_secs(6 * 3600));
    assert_eq!(app.schedule.windows.len(), 2);
    assert_eq!(app.trigger_uids, [33]);
    assert_eq!(app.fifo_gid, Some(33));
    assert_eq!(app.install.keep, 3);
    assert_eq!(app.repository.peers_required, Some(1));
    assert_eq!(app.repository.mirrors.len(), 1);
    assert_eq!(app.repository.mirrors[0].name, "eu");
}
