package config

// Bounds on everything read from a cluster, settings, bookmarks or recent file. They
// are generous for real use and small enough that a hostile or corrupt file
// cannot make the loader allocate without bound.
const (
	// MaxFileBytes caps how much of any config file is read.
	MaxFileBytes = 1 << 20
	// MaxNameChars bounds cluster, operator and bookmark names.
	MaxNameChars = 64
	// MaxOperators bounds the genesis operator list.
	MaxOperators = 64
	// MaxBootstrapAddrs bounds the bootstrap address list.
	MaxBootstrapAddrs = 64
	// MaxBookmarks bounds bookmarks.toml.
	MaxBookmarks = 256
	// MaxRecentClusters bounds recent.toml, the clusters the deck attached
	// to most recently (older ones fall off the end).
	MaxRecentClusters = 16
	// MaxPathBytes bounds a cluster file path in bookmarks.toml and
	// recent.toml (Linux's PATH_MAX).
	MaxPathBytes = 4096
	// MaxHostChars is the longest DNS name a bootstrap host may have.
	MaxHostChars = 253
	// PSKBytes is the size of the cluster pre-shared key (Noise psk3).
	PSKBytes = 32
	// DefaultThreshold is the admin and ICE threshold when the file omits one.
	DefaultThreshold = 1
)

// File modes. The cluster file holds the PSK, and operator keys are private;
// settings and bookmarks only point at files but stay private too, since
// they reveal which clusters an operator can reach.
const (
	ClusterFileMode  = 0o600
	SettingsFileMode = 0o600
	PublicKeyMode    = 0o644
	DirMode          = 0o700
	// ClusterFileOthersMask: a cluster file with any of these bits (every
	// user of the machine may read or rewrite the PSK) is refused unless
	// the operator insists (LoadOptions.InsecurePermissions); group bits
	// only warn, since a team may share a cluster file through a group.
	ClusterFileOthersMask = 0o007
)
