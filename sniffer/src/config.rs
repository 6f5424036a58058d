//! Old paths: the settings that lived here now live beside the layer they set, and are
//! re-exported here so code written against `sniffer::config::…` keeps building.
//!
//! | old path | where it lives |
//! | --- | --- |
//! | `config::Input` | [`crate::capture::Input`] |
//! | `config::LiveConfig` | [`crate::capture::LiveOptions`] |
//! | `config::FlowConfig` | [`crate::flow::FlowConfig`] |

pub use crate::capture::{Input, LiveOptions as LiveConfig};
pub use crate::flow::FlowConfig;

#[cfg(test)]
mod tests {
    /// The old paths name the very same types.
    #[test]
    fn issue10_old_paths_still_name_the_moved_types() {
        let flow: super::FlowConfig = crate::flow::FlowConfig::default();
        let input: super::Input = crate::capture::Input::Files(vec!["x.pcap".into()]);
        let live: super::LiveConfig = crate::capture::LiveOptions {
            iface: "lo".into(),
            filter: crate::capture::KernelFilter::ports(&[80]),
            snaplen: 65535,
            ring_bytes: 1 << 20,
        };
        assert_eq!(flow.memcap, 256 << 20);
        assert!(matches!(input, crate::capture::Input::Files(_)));
        assert_eq!(live.iface, "lo");
    }
}
