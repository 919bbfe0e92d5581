package pusher

import "fmt"

// AppSet looks apps up by key and by id. It is immutable and safe for
// concurrent use.
type AppSet struct {
	list  []*App
	byKey map[string]*App
	byID  map[string]*App
}

// NewAppSet validates apps (key, secret and id required; keys and ids
// unique) and indexes them. Zero fields get Reverb's defaults.
func NewAppSet(apps []App) (*AppSet, error) {
	s := &AppSet{byKey: map[string]*App{}, byID: map[string]*App{}}
	for i := range apps {
		a := apps[i].WithDefaults()
		switch {
		case a.ID == "":
			return nil, fmt.Errorf("pusher: app #%d has no app_id", i+1)
		case a.Key == "":
			return nil, fmt.Errorf("pusher: app %q has no key", a.ID)
		case a.Secret == "":
			return nil, fmt.Errorf("pusher: app %q has no secret", a.ID)
		}
		if _, dup := s.byID[a.ID]; dup {
			return nil, fmt.Errorf("pusher: app_id %q is configured twice; app ids must be unique", a.ID)
		}
		if o, dup := s.byKey[a.Key]; dup {
			return nil, fmt.Errorf("pusher: key %q is used by apps %q and %q; keys must be unique", a.Key, o.ID, a.ID)
		}
		p := &a
		s.list = append(s.list, p)
		s.byKey[a.Key] = p
		s.byID[a.ID] = p
	}
	if len(s.list) == 0 {
		return nil, fmt.Errorf("pusher: no app configured")
	}
	return s, nil
}

// ByKey returns the app with this key, or nil. Looking up with string(b) of a
// byte slice does not allocate.
func (s *AppSet) ByKey(key string) *App { return s.byKey[key] }

// ByID returns the app with this id, or nil.
func (s *AppSet) ByID(id string) *App { return s.byID[id] }

// All returns the apps in configuration order.
func (s *AppSet) All() []*App { return s.list }
