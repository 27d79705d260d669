package policy

// Mode says what happens when a requirement or check is not met.
// The zero value is not a mode; ParseMode maps "" to ModeEnforce.
type Mode string

const (
	// ModeEnforce denies the request.
	ModeEnforce Mode = "enforce"
	// ModeWarn admits the request with a warning.
	ModeWarn Mode = "warn"
	// ModeAudit admits the request with an audit annotation.
	ModeAudit Mode = "audit"
)
