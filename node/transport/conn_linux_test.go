package transport

// recvmmsgAvailable: UDPConn.ReadBatch returns several datagrams per call.
const recvmmsgAvailable = true
