//! The PostgreSQL row client behind the shared record store.
