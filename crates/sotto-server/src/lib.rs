//! The Sotto server: `http` (the API), `service` (domain rules) and `store`
//! (SQLite and PostgreSQL). `sotto serve` calls [`serve`]; tests call [`app`].

pub mod bus;
pub mod http;
pub mod server;
pub mod service;
pub mod store;

#[cfg(test)]
mod test_support;
#[cfg(feature = "testing")]
pub mod testing;

pub use http::app;
pub use server::{Config, Server, ServerError, serve};

/// What every handler can reach: the services, and nothing global.
#[derive(Clone)]
pub struct AppState {
    /// The domain services.
    pub services: service::Services,
    /// Realtime socket tuning.
    pub realtime: http::realtime::RealtimeConfig,
}

impl AppState {
    /// State over opened stores.
    pub fn new(stores: &store::Stores) -> Self {
        Self {
            services: service::Services::new(stores),
            realtime: http::realtime::RealtimeConfig::default(),
        }
    }
}
