package gcptest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Google ID tokens, as the emulator mints and checks them. A Cloud Run
// service whose invoker IAM check is on takes a request only with
// "Authorization: Bearer" and an ID token for the service's URL
// (RULES.md, "Services"); Google signs those tokens with its own keys,
// which the emulator does not have, so it mints its own: JWTs of the
// same shape (header, claims iss, aud, azp, sub, email, email_verified,
// iat and exp, an hour apart) signed with HMAC-SHA256 under a key drawn
// for each Server. Only the Server that minted a token accepts it.

// DefaultServiceAccount is the identity the metadata server's tokens
// name (their email claim): the emulator cannot tell which workload
// asks, so every container is this service account.
const DefaultServiceAccount = "gcptest-compute@developer.gserviceaccount.com"

const (
	idTokenIssuer   = "https://accounts.google.com"
	idTokenLifetime = time.Hour
	// idTokenKeyID names the Server's key in a token's header.
	idTokenKeyID = "gcptest"
)

// idTokenHeader is the JOSE header of every token the emulator mints.
var idTokenHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"` + idTokenKeyID + `","typ":"JWT"}`))

// idTokenClaims are the claims of a Google ID token.
type idTokenClaims struct {
	Iss           string `json:"iss"`
	Aud           string `json:"aud"`
	Azp           string `json:"azp,omitempty"`
	Sub           string `json:"sub"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
	Iat           int64  `json:"iat"`
	Exp           int64  `json:"exp"`
}

// idTokens mints and verifies the Server's ID tokens.
type idTokens struct {
	key []byte
	now func() time.Time
}

func newIDTokens(now func() time.Time) *idTokens {
	key := make([]byte, 32)
	rand.Read(key)
	return &idTokens{key: key, now: now}
}

// mint returns a token for audience naming email, valid for an hour
// from now.
func (k *idTokens) mint(audience, email string) string {
	now := k.now()
	sum := sha256.Sum256([]byte(email))
	// Google's sub is a decimal account number, fixed for the account.
	sub := strconv.FormatUint(binary.BigEndian.Uint64(sum[:8])>>1, 10)
	c := idTokenClaims{
		Iss:           idTokenIssuer,
		Aud:           audience,
		Azp:           sub,
		Sub:           sub,
		Email:         email,
		EmailVerified: email != "",
		Iat:           now.Unix(),
		Exp:           now.Add(idTokenLifetime).Unix(),
	}
	payload, _ := json.Marshal(c)
	signed := idTokenHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signed + "." + base64.RawURLEncoding.EncodeToString(k.sign(signed))
}

func (k *idTokens) sign(s string) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// errTokenNotMinted is the answer for a token this Server did not sign.
var errTokenNotMinted = errors.New("the token is not an ID token signed by this gcptest server")

// verify checks a token's form, signature, issuer and lifetime and
// returns its claims. The audience is the caller's to check.
func (k *idTokens) verify(tok string) (*idTokenClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != idTokenHeader {
		return nil, errTokenNotMinted
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, k.sign(parts[0]+"."+parts[1])) {
		return nil, errTokenNotMinted
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errTokenNotMinted
	}
	var c idTokenClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.Iss != idTokenIssuer {
		return nil, errTokenNotMinted
	}
	if now := k.now().Unix(); now >= c.Exp {
		return nil, errors.New("the token has expired")
	}
	return &c, nil
}

// IDToken returns an ID token for audience (a Cloud Run service's URL,
// or one of its custom audiences), as a caller with the Cloud Run
// Invoker role would present it: "Authorization: Bearer " + the token.
// It names Principal as its email and is valid for an hour of the
// Server's clock. Only this Server accepts it.
func (s *Server) IDToken(audience string) string {
	return s.idTokens.mint(audience, Principal)
}

// IDTokenSource returns an oauth2.TokenSource of the Server's ID tokens
// for audience (IDToken), as google.golang.org/api/idtoken's sources
// give Google's: the token is in AccessToken, Expiry is its exp, and a
// new one is minted shortly before it expires.
func (s *Server) IDTokenSource(audience string) oauth2.TokenSource {
	return oauth2.ReuseTokenSourceWithExpiry(nil, idTokenSource{s, audience}, time.Minute)
}

type idTokenSource struct {
	s        *Server
	audience string
}

func (ts idTokenSource) Token() (*oauth2.Token, error) {
	tok := ts.s.IDToken(ts.audience)
	c, err := ts.s.idTokens.verify(tok)
	if err != nil {
		return nil, err
	}
	return &oauth2.Token{AccessToken: tok, TokenType: "Bearer", Expiry: time.Unix(c.Exp, 0)}, nil
}
