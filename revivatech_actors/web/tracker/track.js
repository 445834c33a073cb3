/*! revivatech-actors track.js: page views and events from any website (docs/api.md). */
(function (window, document) {
  'use strict';
  // Loaded twice (two tags, a tag manager): the first copy keeps its queue and its ids.
  if (window.revivatech && window.revivatech.version) return;

  var VERSION = '1';
  var BATCH_PATH = '/api/analytics/events/batch';
  var BATCH_DELAY = 1000; // ms to wait for more events, so that a burst is one request
  var BATCH_SIZE = 50; // events per request, far below ingest.max_batch
  var MAX_QUEUE = 1000; // events held at most (offline, consent pending); the oldest go first
  var MAX_ATTEMPTS = 10; // a few minutes of backoff before a batch is given up
  var MAX_RETRY_WAIT = 300000; // ms; a longer Retry-After is cut to it
  var BEACON_BYTES = 60000; // browsers refuse beacons past 64 KiB in flight per page
  var SESSION_IDLE = 30 * 60 * 1000; // ms without events after which a new session starts
  var VISITOR_KEY = 'revivatech:visitor';
  var SESSION_KEY = 'revivatech:session';

  var nav = window.navigator;
  var location = window.location;
  // document.currentScript is set only while the script first runs: read everything now.
  var script = document.currentScript;
  if (!script) {
    var tags = document.querySelectorAll('script[src*="track.js"]');
    script = tags[tags.length - 1];
  }
  function attr(name) {
    return (script && script.getAttribute('data-' + name)) || '';
  }
  // The service is where this script came from (its URL without "/track.js"), unless told.
  var endpoint = attr('endpoint');
  if (!endpoint) endpoint = ((script && script.src) || '').split(/[?#]/)[0].replace(/\/[^\/]*$/, '');
  endpoint = endpoint.replace(/\/+$/, '') + BATCH_PATH;
  var writeKey = attr('write-key');
  var consentAttr = attr('consent').toLowerCase();

  function log(level, message, detail) {
    var console = window.console;
    if (console && console[level]) console[level]('[revivatech] ' + message, detail || '');
  }

  var doNotTrack =
    nav.doNotTrack === '1' ||
    nav.doNotTrack === 'yes' ||
    window.doNotTrack === '1' ||
    nav.msDoNotTrack === '1' ||
    nav.globalPrivacyControl === true;
  if (doNotTrack || !window.fetch) {
    // The API stays, so that a site's calls never throw; nothing is stored or sent.
    var off = function () {};
    window.revivatech = { version: VERSION, enabled: false, track: off, page: off, consent: off };
    return;
  }

  function uuid() {
    var crypto = window.crypto;
    if (crypto && crypto.randomUUID) return crypto.randomUUID(); // secure contexts only
    var bytes = new Uint8Array(16);
    if (crypto && crypto.getRandomValues) crypto.getRandomValues(bytes);
    else for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    var hex = '';
    for (var j = 0; j < 16; j++) {
      hex += (bytes[j] + 0x100).toString(16).slice(1);
      if (j === 3 || j === 5 || j === 7 || j === 9) hex += '-';
    }
    return hex;
  }

  // Storage can be missing or throw (privacy modes, sandboxed frames, a full quota): then ids
  // live in this page's memory only, and the next page starts afresh.
  var memory = {};
  function load(area, key) {
    try {
      var value = window[area].getItem(key);
      if (value !== null) return value;
    } catch (e) {}
    return memory[area + key] || null;
  }
  function save(area, key, value) {
    memory[area + key] = value;
    try {
      window[area].setItem(key, value);
    } catch (e) {}
  }
  function forget(area, key) {
    delete memory[area + key];
    try {
      window[area].removeItem(key);
    } catch (e) {}
  }

  var visitor = null;
  function visitorId() {
    if (!visitor) {
      visitor = load('localStorage', VISITOR_KEY);
      if (!visitor) save('localStorage', VISITOR_KEY, (visitor = uuid()));
    }
    return visitor;
  }

  function sessionId(now) {
    var session = null;
    try {
      session = JSON.parse(load('sessionStorage', SESSION_KEY));
    } catch (e) {}
    if (!session || !session.id || !(now - session.last <= SESSION_IDLE)) {
      session = { id: uuid(), last: now };
    }
    session.last = Math.max(session.last, now);
    save('sessionStorage', SESSION_KEY, JSON.stringify(session));
    return session.id;
  }

  function deviceType() {
    var agent = nav.userAgent || '';
    if (/iPad|Tablet|PlayBook|Silk/i.test(agent) || (/Android/.test(agent) && !/Mobi/.test(agent))) {
      return 'tablet';
    }
    return /Mobi|iPhone|iPod|Android/i.test(agent) ? 'mobile' : 'desktop';
  }

  function text(value, most) {
    return value ? String(value).slice(0, most) : undefined;
  }

  var campaign = {};
  (function () {
    var query = location.search.replace(/^\?/, '').split('&');
    for (var i = 0; i < query.length; i++) {
      var pair = query[i].split('=');
      var name = pair[0];
      if (/^utm_(source|medium|campaign|term|content)$/.test(name) && pair[1]) {
        try {
          campaign[name] = text(decodeURIComponent(pair[1].replace(/\+/g, ' ')), 256);
        } catch (e) {}
      }
    }
  })();

  var loadedAt = Date.now();
  var lastEventAt = null;

  // An event gets its event_id when it is created: every retry and beacon sends that id, and
  // the service stores each id once, so a resend is a duplicate, never a second count.
  function createEvent(type, name, props) {
    var now = Date.now();
    var event = {
      event_id: uuid(),
      event_type: type,
      event_name: text(name, 256),
      timestamp: now,
      page_url: text(location.href, 2048),
      referrer: text(document.referrer, 2048),
      screen_resolution: window.screen ? screen.width + 'x' + screen.height : undefined,
      viewport_size: window.innerWidth + 'x' + window.innerHeight,
      device_type: deviceType(),
      time_on_page: now - loadedAt,
      time_since_last_event: lastEventAt === null ? undefined : now - lastEventAt,
    };
    lastEventAt = now;
    for (var utm in campaign) event[utm] = campaign[utm];
    if (props && typeof props === 'object' && !(props instanceof Array)) {
      try {
        // A copy as of now (the page may change its object later), and one that serializes.
        props = JSON.parse(JSON.stringify(props));
      } catch (e) {
        log('warn', 'properties that cannot be sent as JSON were left out', e);
        props = {};
      }
      // A number "value" is the event's value (a booking's amount), as the API has it.
      if (typeof props.value === 'number' && isFinite(props.value)) {
        event.value = props.value;
        delete props.value;
      }
      event.properties = props;
    }
    return event;
  }

  // consent: 'granted' sends; 'pending' holds events (no id is stored yet); 'denied' drops.
  var consent = consentAttr === 'pending' || consentAttr === 'false' ? 'pending' : 'granted';
  var queue = []; // events not yet in a request
  var inFlight = null; // the batch being sent or waiting to be retried: one at a time
  var timer = null;

  function stamp(event) {
    if (!event.user_fingerprint) {
      event.user_fingerprint = visitorId();
      event.session_id = sessionId(event.timestamp);
    }
  }

  function enqueue(event) {
    if (consent === 'denied') return;
    if (consent === 'granted') stamp(event);
    queue.push(event);
    if (queue.length > MAX_QUEUE) {
      queue.splice(0, queue.length - MAX_QUEUE);
      log('warn', 'too many events waiting; the oldest were dropped');
    }
    schedule(queue.length >= BATCH_SIZE ? 0 : BATCH_DELAY);
  }

  function schedule(delay) {
    if (inFlight || consent !== 'granted' || !queue.length) return;
    if (timer) {
      if (delay) return;
      clearTimeout(timer);
    }
    timer = setTimeout(sendNext, delay);
  }

  function body(events) {
    var now = Date.now();
    // sent_at by this clock lets the service correct the clock's error in each timestamp.
    for (var i = 0; i < events.length; i++) events[i].sent_at = now;
    var envelope = { events: events };
    // A beacon cannot carry headers: the key goes in the body, where ingest takes it too.
    if (writeKey) envelope.write_key = writeKey;
    return JSON.stringify(envelope);
  }

  function sendNext() {
    timer = null;
    if (inFlight || consent !== 'granted' || !queue.length) return;
    inFlight = { events: queue.splice(0, BATCH_SIZE), attempts: 0, abandoned: false };
    post(inFlight);
  }

  function finish(batch) {
    if (inFlight === batch) inFlight = null;
    schedule(queue.length >= BATCH_SIZE ? 0 : BATCH_DELAY);
  }

  function post(batch) {
    // text/plain is a "simple" request: no CORS preflight, one round trip per batch.
    window
      .fetch(endpoint, {
        method: 'POST',
        body: body(batch.events),
        headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
        credentials: 'omit',
        mode: 'cors',
      })
      .then(
        function (response) {
          if (batch.abandoned) return;
          var status = response.status;
          if (status === 429 || status >= 500) return retry(batch, retryAfter(response));
          finish(batch);
          if (status >= 300 || status < 200) {
            // Resending what the service refused would be refused again: give it up, say why.
            return response.json().then(
              function (answer) {
                log('error', 'events refused (' + status + ' ' + answer.error + ')', answer);
              },
              function () {
                log('error', 'events refused (' + status + ')');
              }
            );
          }
          return response.json().then(function (answer) {
            if (answer.rejected) log('warn', answer.rejected + ' event(s) refused', answer.results);
          }, function () {});
        },
        function () {
          if (!batch.abandoned) retry(batch, null);
        }
      );
  }

  function retryAfter(response) {
    var value = response.headers.get('Retry-After');
    if (!value) return null;
    var seconds = Number(value);
    if (isNaN(seconds)) seconds = (Date.parse(value) - Date.now()) / 1000;
    return isNaN(seconds) ? null : Math.max(0, seconds) * 1000;
  }

  function retry(batch, wait) {
    batch.attempts += 1;
    if (batch.attempts >= MAX_ATTEMPTS) {
      log('warn', batch.events.length + ' event(s) given up after ' + batch.attempts + ' tries');
      return finish(batch);
    }
    if (wait === null) {
      // 1, 2, 4 ... 60 s, each between half and all of it, so that many pages spread out.
      wait = Math.min(1000 * Math.pow(2, batch.attempts - 1), 60000);
      wait = wait / 2 + (Math.random() * wait) / 2;
    }
    setTimeout(function () {
      if (!batch.abandoned) post(batch);
    }, Math.min(wait, MAX_RETRY_WAIT));
  }

  // The page is being hidden (a tab switch, a navigation, a close): hand everything unsent to
  // the browser, which delivers beacons after the page is gone. A batch still in flight goes
  // too: if its own request also arrives, the service counts its events once.
  function flushHidden() {
    if (consent !== 'granted') return;
    if (timer) clearTimeout(timer);
    timer = null;
    var events = queue.splice(0, queue.length);
    if (inFlight) {
      inFlight.abandoned = true;
      events = inFlight.events.concat(events);
      inFlight = null;
    }
    var size = BATCH_SIZE;
    for (var i = 0; i < events.length; i += size) beacon(events.slice(i, i + size));
  }

  function beacon(events) {
    // text/plain: the only type a browser beacons cross-site without a preflight.
    var blob = new Blob([body(events)], { type: 'text/plain' });
    if (blob.size > BEACON_BYTES && events.length > 1) {
      var half = Math.ceil(events.length / 2);
      beacon(events.slice(0, half));
      beacon(events.slice(half));
      return;
    }
    try {
      if (nav.sendBeacon && nav.sendBeacon(endpoint, blob)) return;
    } catch (e) {}
    try {
      window
        .fetch(endpoint, {
          method: 'POST',
          body: blob,
          headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
          credentials: 'omit',
          mode: 'cors',
          keepalive: true,
        })
        .then(null, function () {});
    } catch (e) {}
  }

  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'hidden') flushHidden();
  });
  window.addEventListener('pagehide', flushHidden);

  function pageView(props) {
    var properties = { page_title: text(document.title, 256) };
    if (props && typeof props === 'object') {
      for (var key in props) {
        if (Object.prototype.hasOwnProperty.call(props, key)) properties[key] = props[key];
      }
    }
    enqueue(createEvent('page_view', null, properties));
  }

  window.revivatech = {
    version: VERSION,
    enabled: true,
    // A custom event. Its event_type is the name with each run of characters the API does not
    // take (other than A-Z a-z 0-9 _ . : -) made "_", at most 64; event_name keeps the name.
    track: function (name, props) {
      if (typeof name !== 'string' || !name) {
        log('warn', 'track(name, props) needs a name');
        return;
      }
      var type = name.replace(/[^A-Za-z0-9_.:-]+/g, '_').slice(0, 64);
      enqueue(createEvent(type, name, props));
    },
    // A page view, for pages that change without loading (single-page apps).
    page: pageView,
    // true: send what was held and what follows; false: drop it all, and forget the ids.
    consent: function (granted) {
      if (granted) {
        if (consent === 'granted') return;
        consent = 'granted';
        for (var i = 0; i < queue.length; i++) stamp(queue[i]);
        schedule(queue.length >= BATCH_SIZE ? 0 : BATCH_DELAY);
        return;
      }
      consent = 'denied';
      queue = [];
      if (timer) clearTimeout(timer);
      timer = null;
      if (inFlight) inFlight.abandoned = true;
      inFlight = null;
      visitor = null;
      forget('localStorage', VISITOR_KEY);
      forget('sessionStorage', SESSION_KEY);
    },
  };

  pageView();
})(window, document);
