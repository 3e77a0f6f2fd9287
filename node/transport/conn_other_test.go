//go:build !linux

package transport

// recvmmsgAvailable: UDPConn.ReadBatch returns one datagram per call.
const recvmmsgAvailable = false
