package trust

const (
	// MaxVerifiedCertificates bounds the cache of certificates whose
	// signature already checked (a full cache is cleared, not grown).
	MaxVerifiedCertificates = 4096
	// MaxKnownMembers bounds the nodes remembered as proven members: the
	// transport's peer table holds at most as many (transport.MaxPeers).
	MaxKnownMembers = 4096
)
