package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/url"
	"time"
)

// SMTP sends mail to one relay, named by SMTP_URL:
//
//	smtp://[user:pass@]host[:port][?tls=required]   port 587 by default; STARTTLS whenever the
//	                                                 server offers it, and required (no
//	                                                 plaintext fallback) with tls=required
//	smtps://[user:pass@]host[:port]                  TLS from the first byte (port 465)
//
// AUTH PLAIN is used only when the URL carries a user, and net/smtp sends it only over TLS
// or to a loopback server, so a password never crosses a network in clear.
type SMTP struct {
	Addr        string // host:port
	Host        string // for the TLS certificate check and AUTH
	ImplicitTLS bool   // smtps
	RequireTLS  bool   // refuse a server that does not offer STARTTLS
	Username    string
	Password    string
	HelloName   string        // EHLO name ("localhost")
	Timeout     time.Duration // one message, connection included (30s)
	TLSConfig   *tls.Config   // nil: the system's roots, ServerName Host
}

// ParseSMTPURL reads SMTP_URL.
func ParseSMTPURL(raw string) (*SMTP, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("must be a URL such as smtp://user:pass@host:587")
	}
	s := &SMTP{Host: u.Hostname(), HelloName: "localhost", Timeout: 30 * time.Second}
	port := u.Port()
	switch u.Scheme {
	case "smtp":
		if port == "" {
			port = "587"
		}
	case "smtps":
		s.ImplicitTLS, s.RequireTLS = true, true
		if port == "" {
			port = "465"
		}
	default:
		return nil, fmt.Errorf("must start with smtp:// or smtps://, not %q", u.Scheme+"://")
	}
	if s.Host == "" {
		return nil, errors.New("must name a host")
	}
	s.Addr = net.JoinHostPort(s.Host, port)
	for k, v := range u.Query() {
		switch {
		case k == "tls" && len(v) == 1 && (v[0] == "required" || v[0] == "opportunistic"):
			s.RequireTLS = s.RequireTLS || v[0] == "required"
		default:
			return nil, fmt.Errorf("has an unknown parameter %q (only tls=required or tls=opportunistic)", k)
		}
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	return s, nil
}

// Send delivers one message to one recipient.
func (s *SMTP) Send(ctx context.Context, m Envelope) error {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tlsConfig := s.TLSConfig
	if tlsConfig == nil {
		tlsConfig = &tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12}
	}
	var (
		conn net.Conn
		err  error
	)
	if s.ImplicitTLS {
		conn, err = (&tls.Dialer{Config: tlsConfig}).DialContext(ctx, "tcp", s.Addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", s.Addr)
	}
	if err != nil {
		return fmt.Errorf("smtp dial %s: %w", s.Addr, err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline) // net/smtp takes no context: the deadline bounds every step
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c, err := smtp.NewClient(conn, s.Host)
	if err != nil {
		return fmt.Errorf("smtp greeting %s: %w", s.Addr, err)
	}
	defer c.Close()
	if err := c.Hello(s.HelloName); err != nil {
		return fmt.Errorf("smtp EHLO: %w", err)
	}
	if !s.ImplicitTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsConfig); err != nil {
				return fmt.Errorf("smtp STARTTLS: %w", err)
			}
		} else if s.RequireTLS {
			return errors.New("smtp: the server does not offer STARTTLS and SMTP_URL requires TLS")
		}
	}
	if s.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, s.Host)); err != nil {
			return fmt.Errorf("smtp AUTH: %w", err)
		}
	}
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	if err := c.Rcpt(m.To); err != nil {
		return fmt.Errorf("smtp RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(m.Message); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	c.Quit() // the message was accepted at the end of DATA: a failed QUIT loses nothing
	return nil
}
