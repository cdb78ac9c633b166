//! Media adapters of wa-server: the data directory (`DirMedia`, the embedded server's and
//! the worker's default) and, with the `s3` feature, an S3 bucket (`S3Media`, the AWS
//! deployment's, `WA_MEDIA_BUCKET`). Both pass `wa_testkit::conformance::media_store`.

mod dir;
#[cfg(feature = "s3")]
pub mod s3;

pub use dir::DirMedia;
#[cfg(feature = "s3")]
pub use s3::S3Media;
