// Security keys for the Simpul console: the browser side of /console/webauthn/*.
// Options come as JSON with base64url byte strings; the browser API wants ArrayBuffers.
(function () {
  function toBytes(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    return Uint8Array.from(atob(s), c => c.charCodeAt(0)).buffer;
  }
  function toText(buffer) {
    let s = btoa(String.fromCharCode(...new Uint8Array(buffer)));
    return s.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function credentialJson(c) {
    const r = c.response, out = {id: c.id, rawId: toText(c.rawId), type: c.type, response: {
      clientDataJSON: toText(r.clientDataJSON)}, clientExtensionResults: c.getClientExtensionResults()};
    if (r.attestationObject) out.response.attestationObject = toText(r.attestationObject);
    if (r.authenticatorData) out.response.authenticatorData = toText(r.authenticatorData);
    if (r.signature) out.response.signature = toText(r.signature);
    if (r.userHandle) out.response.userHandle = toText(r.userHandle);
    return out;
  }
  async function post(path, csrf, body) {
    const answer = await fetch(path, {method: "POST", headers: {"X-CSRF-Token": csrf, "Content-Type": "application/json"},
                                      body: body ? JSON.stringify(body) : "{}", credentials: "same-origin"});
    if (!answer.ok) throw new Error((await answer.json()).detail || answer.status);
    return answer.json();
  }
  async function login(button) {
    const csrf = button.dataset.csrf, options = await post("/console/webauthn/login/options", csrf);
    options.challenge = toBytes(options.challenge);
    options.allowCredentials = (options.allowCredentials || []).map(c => ({...c, id: toBytes(c.id)}));
    const credential = await navigator.credentials.get({publicKey: options});
    const done = await post("/console/webauthn/login", csrf, credentialJson(credential));
    window.location = done.next;
  }
  async function register(button) {
    const csrf = button.dataset.csrf, options = await post("/console/webauthn/register/options", csrf);
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    options.excludeCredentials = (options.excludeCredentials || []).map(c => ({...c, id: toBytes(c.id)}));
    const credential = await navigator.credentials.create({publicKey: options});
    await post("/console/webauthn/register", csrf, credentialJson(credential));
    button.insertAdjacentText("afterend", " registered");
  }
  for (const [id, action] of [["webauthn-login", login], ["webauthn-register", register]]) {
    const button = document.getElementById(id);
    if (button) button.addEventListener("click", () => action(button).catch(e => alert("Security key: " + e.message)));
  }
})();
