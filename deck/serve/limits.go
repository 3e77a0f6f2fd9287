package serve

import "time"

// Every limit of the SSH console server, in one place. A Config field of the
// same name overrides one (tests); zero takes the constant.
const (
	// HandshakeTimeout bounds the SSH handshake and authentication of a
	// connection: a client that stalls there holds a socket for no one.
	HandshakeTimeout = 20 * time.Second

	// SessionIdleTimeout ends a console whose operator typed nothing for
	// this long. Output does not count: the deck redraws every second, so a
	// connection-level idle timer would never fire on an abandoned screen.
	SessionIdleTimeout = 30 * time.Minute
	// IdleCheckInterval is how often the idle watchdog looks; an idle
	// console ends at most this long after SessionIdleTimeout.
	IdleCheckInterval = 15 * time.Second

	// MaxSessionDuration is the absolute lifetime of a connection and of the
	// console in it, typed into or not: re-authentication at least this often.
	MaxSessionDuration = 12 * time.Hour

	// ConnectionGrace is how much longer than its console a connection may
	// live (idle or in total), so the console's goodbye reaches the client
	// before the connection-level timers cut it.
	ConnectionGrace = 30 * time.Second

	// MaxConcurrentSessions bounds the consoles one server runs at once;
	// further sessions are refused with a message.
	MaxConcurrentSessions = 64

	// ConnAttemptsBurstPerSource is how many TCP connections one source IP
	// may open back to back; ConnAttemptRefillInterval gives one more
	// attempt back per interval (here 12 per minute sustained).
	ConnAttemptsBurstPerSource = 8
	ConnAttemptRefillInterval  = 5 * time.Second
	// MaxTrackedSources caps the rate limiter's table, so a spray of source
	// addresses cannot grow it without bound; past the cap the least
	// recently seen source is forgotten.
	MaxTrackedSources = 4096

	// AgentSignTimeout bounds one signature through a forwarded agent (a
	// `ssh-add -c` agent waits for the operator to confirm on their machine).
	AgentSignTimeout = 30 * time.Second
	// MaxAgentKeys bounds how many agent keys a session looks through.
	MaxAgentKeys = 64

	// MaxAuthorizedKeysBytes bounds the authorized-keys file read at each
	// authentication.
	MaxAuthorizedKeysBytes = 1 << 20

	// SessionLogCapacityRecords bounds each console's log ring: twenty
	// consoles on one node must not each hold the TUI's full default ring.
	SessionLogCapacityRecords = 10_000

	// ShutdownGrace is how long Close waits for consoles to say goodbye
	// before it drops their connections.
	ShutdownGrace = 3 * time.Second
)

// HostKeyFile is the host key's file name under the data dir.
const HostKeyFile = "ssh_host_ed25519_key"
