package verifier

import (
	"fmt"
	"net/netip"
	"slices"
)

// Network classes of BlockedError: which kind of blocked network the
// guard found the registry's address in.
const (
	NetworkLoopback    = "loopback"
	NetworkLinkLocal   = "link-local"
	NetworkMetadata    = "cloud metadata address 169.254.169.254"
	NetworkUnspecified = "unspecified"
	NetworkMulticast   = "multicast"
	// NetworkConfigured is a prefix of Options.BlockedNetworks that is not
	// one of DefaultBlockedNetworks; BlockedError.Network names it.
	NetworkConfigured = "configured"
)

// metadataAddr is the cloud metadata service (AWS, GCP, Azure, ...).
var metadataAddr = netip.MustParseAddr("169.254.169.254")

// BlockedError is the network guard's refusal to connect to a registry
// (or a token service or redirect target) whose address is in one of
// Options.BlockedNetworks and whose host is not in Options.AllowedHosts.
// A RefusedError carries it as Guard. It holds only what the verifier
// itself dialed, never a registry's text.
type BlockedError struct {
	// Host is the host:port the guard refused, as dialed (the registry
	// host with the scheme's port when the reference names none). Listing
	// it, or its host name, in Options.AllowedHosts lets it through.
	Host string
	// Addr is the address Host resolved to, Prefix the blocked network
	// containing it.
	Addr   netip.Addr
	Prefix netip.Prefix
	// Class is one of the Network* constants.
	Class string
}

// Network says which network blocked the address, in the verifier's own
// words: "loopback", "link-local", "cloud metadata address
// 169.254.169.254", "unspecified", "multicast", or "a blocked network
// 10.0.0.0/8" for a prefix of the configuration.
func (e *BlockedError) Network() string {
	if e.Class == NetworkConfigured || e.Class == "" {
		return "a blocked network " + e.Prefix.String()
	}
	return e.Class
}

// Problem says, after "registry HOST", what the guard did: "is blocked
// by the network guard (loopback)".
func (e *BlockedError) Problem() string {
	return "is blocked by the network guard (" + e.Network() + ")"
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("dial %s: %s: %v (%s; list the registry in allowedHosts if it is trusted)", e.Host, e.Addr, errBlocked, e.Network())
}

// Unwrap makes errors.Is(err, errBlocked) hold.
func (e *BlockedError) Unwrap() error { return errBlocked }

// blocked returns the BlockedError for host (host:port) when ip is in one
// of the blocked prefixes, else nil.
func blocked(prefixes []netip.Prefix, host string, ip netip.Addr) *BlockedError {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return &BlockedError{Host: host, Addr: ip, Prefix: p, Class: networkClass(p, ip)}
		}
	}
	return nil
}

// networkClass names the kind of network p is: a default prefix by the
// kind of address ip is, any other prefix NetworkConfigured.
func networkClass(p netip.Prefix, ip netip.Addr) string {
	if !slices.Contains(DefaultBlockedNetworks(), p.Masked()) {
		return NetworkConfigured
	}
	switch {
	case ip == metadataAddr:
		return NetworkMetadata
	case ip.IsLoopback():
		return NetworkLoopback
	case ip.IsLinkLocalUnicast():
		return NetworkLinkLocal
	case ip.IsMulticast():
		return NetworkMulticast
	case ip.IsUnspecified(), ip.Is4() && ip.As4()[0] == 0:
		return NetworkUnspecified
	}
	return NetworkConfigured
}
