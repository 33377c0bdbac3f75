//! Shared helpers: a fake server with a client pointed at it, and a log capture.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use strata_neon_api::fake::{FakeNeon, FakeNeonConfig};
use strata_neon_api::{NeonApiConfig, NeonClient, Secret};
use tracing_subscriber::fmt::MakeWriter;

/// The API key the fake accepts in these tests.
pub(crate) const API_KEY: &str = "napi_testSECRETkey0123456789";

/// A fake server and a fast client for it.
pub(crate) async fn start() -> (FakeNeon, NeonClient) {
    start_with(FakeNeonConfig::default(), |config| config).await
}

/// The same with a changed fake config and client config.
pub(crate) async fn start_with(
    mut fake_config: FakeNeonConfig,
    client_config: impl FnOnce(NeonApiConfig) -> NeonApiConfig,
) -> (FakeNeon, NeonClient) {
    let _ = LogCapture::global();
    fake_config.api_key = Some(API_KEY.to_owned());
    let fake = FakeNeon::start(fake_config).await.expect("fake server starts");
    let config =
        client_config(NeonApiConfig::new(Secret::new(API_KEY)).with_base_url(fake.base_url()).fast_for_tests());
    let client = NeonClient::new(config).expect("client builds");
    (fake, client)
}

/// Captures every log line of every level of every test in this binary (a global
/// subscriber: a thread-local one misses events whose callsites other test threads
/// registered first).
#[derive(Clone, Default)]
pub(crate) struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

pub(crate) struct CaptureWriter {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter { buffer: Arc::clone(&self.buffer) }
    }
}

impl LogCapture {
    /// The process-wide capture, installed as the global TRACE-level subscriber on first use.
    pub(crate) fn global() -> &'static LogCapture {
        static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
        CAPTURE.get_or_init(|| {
            let capture = LogCapture::default();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(capture.clone())
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
            capture
        })
    }

    /// Everything logged so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}
