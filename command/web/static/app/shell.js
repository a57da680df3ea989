// The frame every case page shares: log in (or resume the session), show who is in,
// log out. The page hands in `start(user)`, called once the user is known.
function startShell(start) {
  document.addEventListener("DOMContentLoaded", async () => {
    const form = document.getElementById("login");
    let started = false;
    const show = async (user) => {
      started = true;
      api.user = user;
      form.hidden = true;
      document.getElementById("app").hidden = false;
      document.getElementById("logout").hidden = false;
      const who = () => {
        document.getElementById("who").textContent = `${user.display_name} · ${roleName(user.role, user.role_name)}`;
      };
      who();
      document.addEventListener("citygrid:language", who);
      await start(user);
    };
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const error = document.getElementById("login-error");
      error.textContent = "";
      try {
        await show(await api.login(form.username.value, form.password.value));
      } catch (err) {
        error.textContent = err instanceof TypeError ? t("network_down") : err.message;
      }
    });
    document.getElementById("logout").addEventListener("click", () => { api.logout(); location.reload(); });
    // An expired session mid-work: back to the login form (the phone's outbox lives on in IndexedDB).
    document.addEventListener("citygrid:unauthorized", () => { if (started) location.reload(); });
    if (api.token) {
      let me = null;
      try {
        me = (await api.get("/api/me")).data;
      } catch (err) {
        if (err instanceof ApiError) api.logout();
      }
      if (me) return show(me);
    }
    form.hidden = false;
  });
}
