//! Getting an upgrade's binary: what its plan says to fetch (`plan_info`), the download itself,
//! unpacking and arranging archives, and asking the node for its plan over gRPC. Uses `home` and
//! the shared pieces; knows nothing of the running daemon.

pub mod archive;
pub mod download;
pub mod grpc;
pub mod plan_info;
