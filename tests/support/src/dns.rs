//! A DNS server for the discovery tests, on a real UDP socket: it answers
//! A queries from a table the test changes while calls flow, and can answer
//! NXDOMAIN, answer with no records, or say nothing at all (a server that
//! times out). Messages are read and written with hickory-proto, the codec
//! of the resolver under test's own library, so what it sends is real DNS.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What the server says about a name.
#[derive(Clone, Debug)]
pub enum DnsAnswer {
    /// These A records (and no AAAA).
    Addresses(Vec<Ipv4Addr>),
    /// NXDOMAIN: the name does not exist.
    NoSuchName,
    /// NOERROR with no records.
    NoRecords,
    /// No reply at all.
    Silent,
}

pub struct TestDns {
    address: SocketAddr,
    answers: Arc<Mutex<HashMap<String, DnsAnswer>>>,
    queries: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TestDns {
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind the test DNS server");
        let address = socket.local_addr().unwrap();
        let answers: Arc<Mutex<HashMap<String, DnsAnswer>>> = Arc::default();
        let queries = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(socket, answers.clone(), queries.clone()));
        Self { address, answers, queries, task }
    }

    /// Where to send queries: the mesh's `--dns-server`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// From now on, `name` (without the final dot) is answered with `answer`.
    pub fn set(&self, name: &str, answer: DnsAnswer) {
        self.answers.lock().unwrap().insert(name.to_ascii_lowercase(), answer);
    }

    /// Queries received so far.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::Relaxed)
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(socket: UdpSocket, answers: Arc<Mutex<HashMap<String, DnsAnswer>>>, queries: Arc<AtomicUsize>) {
    let mut buffer = vec![0u8; 4096];
    loop {
        let Ok((length, from)) = socket.recv_from(&mut buffer).await else { return };
        let Ok(request) = Message::from_vec(&buffer[..length]) else { continue };
        queries.fetch_add(1, Ordering::Relaxed);
        let Some(query) = request.queries.first().cloned() else { continue };
        let name = query.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
        let answer = answers.lock().unwrap().get(&name).cloned().unwrap_or(DnsAnswer::NoSuchName);
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.message_type = MessageType::Response;
        response.metadata.authoritative = true;
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.add_query(query.clone());
        match answer {
            DnsAnswer::Silent => continue,
            DnsAnswer::NoSuchName => response.metadata.response_code = ResponseCode::NXDomain,
            DnsAnswer::NoRecords => {}
            DnsAnswer::Addresses(addresses) => {
                if query.query_type() == RecordType::A {
                    for address in addresses {
                        // TTL 0: the resolver must not cache, the test changes answers.
                        response.add_answer(Record::from_rdata(query.name().clone(), 0, RData::A(A(address))));
                    }
                }
            }
        }
        if let Ok(bytes) = response.to_vec() {
            let _ = socket.send_to(&bytes, from).await;
        }
    }
}
