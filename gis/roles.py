"""The user roles of the system (app_user.role), with their Chinese names."""
ROLES = {
    "admin": "系统管理员",
    "leader": "领导",
    "commander": "指挥长",
    "shift_lead": "值班长",
    "operator": "受理员",
    "dispatcher": "派遣员",
    "department": "专业部门",
    "inspector": "监督员",
}
