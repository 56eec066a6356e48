package fakeconcourse

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// defaultTokenTTL: tokens last 24 h by default; Dex answers expires_in 86399.
const defaultTokenTTL = 24 * time.Hour

type tokenInfo struct {
	user   string
	expiry time.Time
}

// mintLocked creates and stores an access token for user: opaque like the
// ATC's (v6.1+), or a JWT-looking one on a legacy server. It also returns an
// id_token (a JWT that is not an access token) for the modern answer.
func (s *Server) mintLocked(userName string) (access, idToken string) {
	now := s.now()
	exp := now.Add(s.ttl)
	if s.legacy {
		access = fakeJWT(map[string]any{
			"sub": subject(userName), "user_id": userName, "user_name": userName, "name": userName,
			"email": "", "teams": s.teamsOfLocked(userName), "is_admin": s.users[userName] != nil && s.users[userName].teams["main"],
			"exp": exp.Unix(), "csrf": randomHex(32),
		})
	} else {
		var b [28]byte
		_, _ = rand.Read(b[:20])
		binary.LittleEndian.PutUint64(b[20:], uint64(exp.Unix()))
		access = base64.RawStdEncoding.EncodeToString(b[:])
	}
	s.tokens[access] = tokenInfo{user: userName, expiry: exp}
	idToken = fakeJWT(map[string]any{
		"iss": s.URL + "/sky/issuer", "sub": subject(userName), "aud": "fly",
		"exp": exp.Unix(), "iat": now.Unix(), "at_hash": randomB64(16),
		"email": userName, "email_verified": false, "name": userName, "preferred_username": userName,
		"federated_claims": map[string]string{"connector_id": "local", "user_id": userName},
	})
	return access, idToken
}

func (s *Server) teamsOfLocked(userName string) []string {
	var out []string
	if u := s.users[userName]; u != nil {
		for t := range u.teams {
			out = append(out, t)
		}
	}
	return out
}

// subject is Dex's sub claim: a protobuf of the user id and connector id, base64.
func subject(userName string) string {
	raw := append([]byte{0x0a, byte(len(userName))}, userName...)
	raw = append(raw, 0x12, 5)
	raw = append(raw, "local"...)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func fakeJWT(claims map[string]any) string {
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": randomHex(20), "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	sig := make([]byte, 256)
	_, _ = rand.Read(sig)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString(sig)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// bearerUser returns the user of a valid bearer token, or "". Like the ATC,
// the header must be exactly two space-separated parts, the first "bearer"
// in any case; anything else counts as no valid token.
func (s *Server) bearerUser(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if h == "" {
		return ""
	}
	parts := strings.Split(h, " ")
	if len(parts) != 2 || !strings.EqualFold(parts[0], "bearer") {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ti, ok := s.tokens[parts[1]]
	if !ok || !s.now().Before(ti.expiry) {
		return ""
	}
	return ti.user
}

// dexError writes a Dex token-endpoint error.
func dexError(w http.ResponseWriter, status int, typ, desc string) {
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{typ, desc})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// dexPasswordGrant is Dex's password grant after the client was accepted:
// it returns the user, or an error status with Dex's JSON error body.
func (s *Server) dexPasswordGrant(form url.Values) (userName string, status int, errType, errDesc string) {
	hasOpenID := false
	var unrecognized []string
	for _, sc := range strings.Fields(form.Get("scope")) {
		switch sc {
		case "openid":
			hasOpenID = true
		case "offline_access", "email", "profile", "groups", "federated:id":
		default:
			unrecognized = append(unrecognized, sc)
		}
	}
	if !hasOpenID {
		return "", http.StatusBadRequest, "invalid_request", `Missing required scope(s) ["openid"].`
	}
	if len(unrecognized) > 0 {
		return "", http.StatusBadRequest, "invalid_request", fmt.Sprintf("Unrecognized scope(s) %q", unrecognized)
	}
	userName, password := form.Get("username"), form.Get("password")
	s.mu.Lock()
	u := s.users[userName]
	ok := u != nil && userName != "" && u.password == password
	s.mu.Unlock()
	if !ok {
		return "", http.StatusUnauthorized, "access_denied", "Invalid username or password"
	}
	return userName, 0, "", ""
}

// handleIssuerToken is POST /sky/issuer/token on v6.1+: Dex's token endpoint,
// whose access token the ATC replaces by an opaque one.
func (s *Server) handleIssuerToken(w http.ResponseWriter, r *http.Request) {
	if s.legacy {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		dexError(w, http.StatusBadRequest, "invalid_request", "method not allowed")
		return
	}
	if err := r.ParseForm(); err != nil {
		dexError(w, http.StatusBadRequest, "invalid_request", "")
		return
	}
	if r.PostFormValue("grant_type") != "password" {
		dexError(w, http.StatusBadRequest, "unsupported_grant_type", "")
		return
	}
	clientID, secret, ok := r.BasicAuth()
	if ok {
		var err1, err2 error
		clientID, err1 = url.QueryUnescape(clientID)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			dexError(w, http.StatusBadRequest, "invalid_request", "client_id improperly encoded")
			return
		}
	} else {
		clientID, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	if clientID != "fly" || secret != "Zmx5" {
		dexError(w, http.StatusUnauthorized, "invalid_client", "Invalid client credentials.")
		return
	}
	userName, status, typ, desc := s.dexPasswordGrant(r.Form)
	if status != 0 {
		dexError(w, status, typ, desc)
		return
	}
	s.mu.Lock()
	access, idToken := s.mintLocked(userName)
	s.tokensIssued++
	s.mu.Unlock()
	state(r).user = userName
	body, _ := json.Marshal(struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		IDToken     string `json:"id_token"`
	}{access, "bearer", int(s.ttl/time.Second) - 1, idToken})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// handleLegacyToken is POST /sky/token before v6.1: skymarshal checks the
// fly client itself (empty 401s), asks Dex for a password grant (passing
// Dex's error through) and answers its own signed token as an oauth2.Token.
func (s *Server) handleLegacyToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	clientID, secret, ok := r.BasicAuth()
	if !ok || clientID != "fly" || secret != "Zmx5" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.FormValue("grant_type") != "password" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	form := url.Values{
		"username": {r.FormValue("username")},
		"password": {r.FormValue("password")},
		// skymarshal split the scope on "+" and oauth2 joined it with spaces.
		"scope": {strings.Join(strings.Split(r.FormValue("scope"), "+"), " ")},
	}
	userName, status, typ, desc := s.dexPasswordGrant(form)
	if status != 0 {
		body, _ := json.Marshal(struct {
			Error       string `json:"error"`
			Description string `json:"error_description,omitempty"`
		}{typ, desc})
		http.Error(w, string(body), status)
		return
	}
	s.mu.Lock()
	if len(s.teamsOfLocked(userName)) == 0 { // "user doesn't belong to any team"
		s.mu.Unlock()
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	access, _ := s.mintLocked(userName)
	exp := s.tokens[access].expiry
	s.tokensIssued++
	s.mu.Unlock()
	state(r).user = userName
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		AccessToken string    `json:"access_token"`
		TokenType   string    `json:"token_type"`
		Expiry      time.Time `json:"expiry"`
	}{access, "Bearer", exp})
}

// Clock is a clock for tests that moves only when told: give its Now to
// WithClock and to the code under test, and let days pass with Advance.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock showing start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
