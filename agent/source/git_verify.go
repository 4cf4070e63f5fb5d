package source

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// readKeyRing reads the armored OpenPGP public keys of file, refusing a file
// that holds none.
func readKeyRing(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("git source: reading verify keys: %w", err)
	}
	ring, err := openpgp.ReadArmoredKeyRing(strings.NewReader(string(data)))
	if err != nil {
		return "", fmt.Errorf("git source: reading verify keys %s: %w", file, err)
	}
	if len(ring) == 0 {
		return "", fmt.Errorf("git source: verify keys %s holds no key", file)
	}
	return string(data), nil
}

// verify refuses the commit unless it carries an OpenPGP signature by one of
// the configured keys. Only the tip is checked, as Flux does: it is the
// revision that gets applied, and with a shallow clone its ancestors are not
// even present.
func (g *Git) verify(c *object.Commit) error {
	if g.keyRing == "" {
		return nil
	}
	if strings.TrimSpace(c.PGPSignature) == "" {
		return &kindError{msg: fmt.Sprintf("commit %s is not signed", short(c.Hash)), kind: ErrSignature}
	}
	if _, err := c.Verify(g.keyRing); err != nil {
		key := signatureKey(c.PGPSignature)
		if errors.Is(err, pgperrors.ErrUnknownIssuer) {
			return &kindError{msg: fmt.Sprintf("commit %s is signed by unknown key %s", short(c.Hash), key), kind: ErrSignature}
		}
		return &kindError{msg: fmt.Sprintf("commit %s has an invalid signature (key %s)", short(c.Hash), key), kind: ErrSignature, cause: err}
	}
	return nil
}

// signatureKey names the key an armored signature claims to be made by:
// its fingerprint when present, else its 64-bit key ID.
func signatureKey(armored string) string {
	block, err := armor.Decode(strings.NewReader(armored))
	if err != nil {
		return "(not an OpenPGP signature)"
	}
	p, err := packet.Read(block.Body)
	if err != nil {
		return "(unreadable signature)"
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return "(unreadable signature)"
	}
	switch {
	case len(sig.IssuerFingerprint) > 0:
		return fmt.Sprintf("%X", sig.IssuerFingerprint)
	case sig.IssuerKeyId != nil:
		return fmt.Sprintf("%016X", *sig.IssuerKeyId)
	}
	return "(no issuer)"
}
