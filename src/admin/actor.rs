//! The admin server as a supervised actor: it listens from `pre_start` to `post_stop`, so the
//! node's tree starts it first and stops it last.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{AdminServer, AdminState};

pub struct AdminArgs {
    pub addr: String,
    pub state: AdminState,
    /// Filled with the bound address (useful with port 0).
    pub bound: Arc<Mutex<Option<SocketAddr>>>,
}

pub struct AdminActor;

impl Actor for AdminActor {
    type Msg = ();
    type State = AdminServer;
    type Arguments = AdminArgs;

    async fn pre_start(&self, _myself: ActorRef<()>, args: AdminArgs) -> Result<AdminServer, ActorProcessingErr> {
        let server = AdminServer::start(&args.addr, args.state).await?;
        *args.bound.lock().unwrap_or_else(|e| e.into_inner()) = Some(server.addr());
        Ok(server)
    }

    async fn post_stop(&self, _myself: ActorRef<()>, server: &mut AdminServer) -> Result<(), ActorProcessingErr> {
        server.stop().await;
        Ok(())
    }
}
