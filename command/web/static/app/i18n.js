// UI strings: Chinese by default, English on request (remembered in localStorage).
const STRINGS = {
  zh: {
    title: "城市网格地图 · CityGrid Command", brand: "CityGrid 数字城管", logout: "退出",
    login_title: "登录", username: "用户名", password: "密码", login: "登录",
    demo_hint: "演示账号：admin / citygrid-demo", areas: "辖区", legend: "图例", lookup: "点查",
    lookup_hint: "点击地图查询所在网格和附近部件", grids: "单元网格", parts: "部件", streets: "街道/镇",
    communities: "社区", grid: "网格", community: "社区", street: "街道", county: "区县",
    nearest: "附近部件", none: "无", outside: "不在辖区网格内", status: "状态", klass: "类别",
    code: "编码", population: "人口", area: "面积", roads: "道路", buildings: "建筑", water: "水系",
    loading: "加载中…", switch: "English", parts_zoom: "放大到街道级别显示部件",
    parts_truncated: "视图内部件过多，仅显示前 5000 个，请放大",
  },
  en: {
    title: "City grid map · CityGrid Command", brand: "CityGrid Command", logout: "Log out",
    login_title: "Log in", username: "User name", password: "Password", login: "Log in",
    demo_hint: "Demo account: admin / citygrid-demo", areas: "Jurisdiction", legend: "Legend", lookup: "Look-up",
    lookup_hint: "Click the map for its unit grid and nearby parts", grids: "Unit grids", parts: "Parts",
    streets: "Streets/towns", communities: "Communities", grid: "Grid", community: "Community", street: "Street",
    county: "County", nearest: "Nearby parts", none: "none", outside: "Outside the jurisdiction's grids",
    status: "Status", klass: "Class", code: "Code", population: "Population", area: "Area", roads: "Roads",
    buildings: "Buildings", water: "Water", loading: "Loading…", switch: "中文",
    parts_zoom: "Zoom in to street level to see parts", parts_truncated: "Too many parts here: showing the first 5,000; zoom in",
  },
};
let LANG = localStorage.getItem("citygrid.lang") || "zh";

function t(key) { return (STRINGS[LANG] && STRINGS[LANG][key]) || STRINGS.zh[key] || key; }

function applyLanguage() {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  const button = document.getElementById("lang");
  if (button) button.textContent = t("switch");
}

document.addEventListener("DOMContentLoaded", () => {
  applyLanguage();
  document.getElementById("lang").addEventListener("click", () => {
    LANG = LANG === "zh" ? "en" : "zh";
    localStorage.setItem("citygrid.lang", LANG);
    applyLanguage();
    document.dispatchEvent(new Event("citygrid:language"));
  });
});
