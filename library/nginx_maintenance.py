#!/usr/bin/python
# Copyright: (c) 2025, bluegreen contributors
# Apache License 2.0 (see the project's pyproject.toml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nginx_maintenance
short_description: Turn an nginx site's maintenance mode on or off, or put it back as it was
description:
  - Maintenance mode is a flag file that the site checks on each request (an C(if) on
    C(-f <flag>) that returns 503), a page served as the body of that 503, and an
    include, loaded with nginx's configuration, that adds the C(Retry-After) header. Because
    nginx checks the flag per request, creating or removing it takes effect at once, with no
    reload.
  - The module refuses, changing nothing, when the site at O(site_path) does not mention
    O(flag_path). Such a site was rendered before maintenance mode existed and would keep
    serving users while the task reported success.
  - "O(maintenance=true): the include is rewritten when the C(Retry-After) it sends is not
    O(retry_after); then O(test_command) checks the configuration and O(reload_command)
    reloads nginx gracefully. Then the page is written (when O(page_content) is given), and
    last the flag file is created, recording when maintenance began. A flag already there
    is left alone."
  - O(maintenance=false) removes the flag file and nothing else, so the next request reaches
    the service.
  - O(put_back) writes back the files as an earlier run returned them in RV(previous); a
    playbook that toggles several load balancers uses it to undo the others when one fails.
  - Every write is atomic (a temporary file in the same directory, renamed over the file).
    When a write, the test or the reload fails, every file already changed is put back as it
    was, nginx is reloaded again when it had been, and the task fails saying what nginx has
    now. The include, test, reload and put-back are the ones M(nginx_color) uses.
version_added: "0.1.0"
options:
  maintenance:
    description:
      - V(true) turns maintenance mode on, V(false) turns it off.
      - Exactly one of O(maintenance) and O(put_back) is required.
    type: bool
  put_back:
    description:
      - The files as RV(previous) of an earlier run returned them, to write back as they were
        (a file that was V(null) is removed). A file left out is left as it is.
      - When the include changes back, nginx is tested and reloaded as for turning maintenance on.
    type: dict
  site_path:
    description:
      - The nginx site of the service, which must check O(flag_path). It is only read.
      - Required with O(maintenance).
    type: path
  flag_path:
    description:
      - The flag file. Maintenance mode is on while it exists; C(touch) on the host is the
        emergency switch when Ansible cannot run.
      - It holds JSON with C(since) (UTC) and C(retry_after), for the operators.
    type: path
    required: true
  include_path:
    description:
      - The include that sets the C(Retry-After) header, included by the location that serves
        the page. It is written with C(add_header Retry-After <retry_after> always;).
    type: path
    required: true
  page_path:
    description:
      - The maintenance page that nginx serves as the body of the 503.
    type: path
    required: true
  page_content:
    description:
      - The page, as HTML, written to O(page_path) when maintenance is turned on (without a reload,
        nginx reads it per request). Render it on the controller, e.g. with a template lookup.
      - Omit it to leave the page as it is.
    type: str
  retry_after:
    description:
      - Seconds users are asked to wait before retrying, sent as C(Retry-After) while
        maintenance is on. Changing it rewrites the include and reloads nginx once.
    type: int
    default: 300
  test_command:
    description:
      - The configuration test run after the include is written, as in M(nginx_color); when
        it exits non-zero every changed file is put back and the task fails with its stderr.
    type: list
    elements: str
    default: [nginx, -t]
  reload_command:
    description:
      - The graceful reload that loads a new include, as in M(nginx_color).
    type: list
    elements: str
    default: [systemctl, reload, nginx]
extends_documentation_fragment:
  - action_common_attributes
  - action_common_attributes.files
attributes:
  check_mode:
    support: full
    details: In check mode nothing is written or reloaded; RV(changed), RV(site_checks_flag)
      and the diff tell what would happen, and a site that does not check the flag fails.
  diff_mode:
    support: full
    details: One diff per file that changes (the include, the page, the flag).
  platform:
    platforms: posix
  safe_file_operations:
    support: full
  vault:
    support: none
notes:
  - The site needs an C(if) on C(-f <flag_path>) that returns 503, and C(error_page 503 <uri>;),
    in the location that proxies to the service, and an internal location for C(<uri>) that serves
    O(page_path) and includes O(include_path).
  - Run the module on every load balancer; toggling several hosts all or none is the calling
    playbook's job (O(put_back) is the way back).
seealso:
  - module: nginx_color
    description: Switches the live colour; shares this module's write, test, reload and put-back.
  - name: nginx rewrite module (if, return)
    description: The per-request check of the flag file.
    link: https://nginx.org/en/docs/http/ngx_http_rewrite_module.html#if
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Turn maintenance mode on for sampleapp, asking users to come back in 15 minutes
  nginx_maintenance:
    maintenance: true
    site_path: /etc/nginx/conf.d/sampleapp.conf
    flag_path: /var/www/bluegreen/sampleapp/maintenance.on
    include_path: /etc/nginx/bluegreen/sampleapp.maintenance.conf
    page_path: /var/www/bluegreen/sampleapp/maintenance.html
    page_content: "{{ lookup('ansible.builtin.template', 'maintenance.html.j2') }}"
    retry_after: 900
  register: sampleapp_maintenance

- name: Turn maintenance mode off again
  nginx_maintenance:
    maintenance: false
    site_path: /etc/nginx/conf.d/sampleapp.conf
    flag_path: /var/www/bluegreen/sampleapp/maintenance.on
    include_path: /etc/nginx/bluegreen/sampleapp.maintenance.conf
    page_path: /var/www/bluegreen/sampleapp/maintenance.html
  when: not sampleapp_maintenance.was_on

- name: Put the files back as they were before the first task
  nginx_maintenance:
    put_back: "{{ sampleapp_maintenance.previous }}"
    flag_path: /var/www/bluegreen/sampleapp/maintenance.on
    include_path: /etc/nginx/bluegreen/sampleapp.maintenance.conf
    page_path: /var/www/bluegreen/sampleapp/maintenance.html
    test_command: [/usr/local/sbin/nginx, -t]
    reload_command: [/usr/local/sbin/nginx, -s, reload]
"""

RETURN = r"""
maintenance:
  description:
    - Whether maintenance mode is on after the task (in check mode, whether it would be).
  returned: always
  type: bool
  sample: true
was_on:
  description: Whether maintenance mode was on before the task (the flag file existed).
  returned: always
  type: bool
  sample: false
retry_after:
  description:
    - The C(Retry-After) seconds users get while maintenance is on; V(null) when it is off.
  returned: always
  type: int
  sample: 300
reloaded:
  description: Whether nginx was reloaded (the include changed). Never in check mode.
  returned: always
  type: bool
  sample: false
site_checks_flag:
  description:
    - Whether the site mentions O(flag_path); the module refuses when it does not.
    - V(null) with O(put_back), which does not read the site.
  returned: always
  type: bool
  sample: true
previous:
  description:
    - Each file's content before the task, V(null) for a file that did not exist. Give it
      as O(put_back) to undo the task.
  returned: always
  type: dict
  contains:
    include:
      description: The Retry-After include.
      type: str
      sample: "add_header Retry-After 300 always;\n"
    page:
      description: The maintenance page.
      type: str
      sample: "<!doctype html>..."
    flag:
      description: The flag file.
      type: str
      sample: null
diff:
  description:
    - For each file that changes, its content before and after, with its path as both headers.
  returned: when diff mode is on
  type: list
  elements: dict
  sample:
    - before: ""
      after: '{"since": "2025-06-01T12:00:00Z", "retry_after": 300}'
      before_header: /var/www/bluegreen/sampleapp/maintenance.on
      after_header: /var/www/bluegreen/sampleapp/maintenance.on
failed_command:
  description:
    - The nginx command that failed (C(nginx -t) or the reload), after every file was put
      back - C(cmd), its exit code C(rc), C(stdout) and C(stderr).
  returned: when test_command or reload_command failed
  type: dict
  sample:
    cmd: [nginx, -t]
    rc: 1
    stdout: ""
    stderr: 'nginx: [emerg] unknown directive "add_headr" in /etc/nginx/bluegreen/app.conf:4'
"""

import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.nginx_config import (
    NginxConfigError,
    apply_changes,
    as_text,
    read_file,
)
from ansible.module_utils.nginx_maintenance import (
    MaintenanceFiles,
    MaintenancePaths,
    build_diffs,
    failed_message,
    file_changes,
    files_after,
    retry_after_in,
    site_checks_flag,
    stale_site_message,
    state_word,
    validate_put_back,
    validate_retry_after,
)

ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    maintenance=dict(type="bool"),
    put_back=dict(type="dict"),
    site_path=dict(type="path"),
    flag_path=dict(type="path", required=True),
    include_path=dict(type="path", required=True),
    page_path=dict(type="path", required=True),
    page_content=dict(type="str"),
    retry_after=dict(type="int", default=300),
    test_command=dict(type="list", elements="str", default=["nginx", "-t"]),
    reload_command=dict(type="list", elements="str", default=["systemctl", "reload", "nginx"]),
)


def read_files(paths: MaintenancePaths) -> MaintenanceFiles:
    return MaintenanceFiles(
        include=read_file(paths.include), page=read_file(paths.page), flag=read_file(paths.flag)
    )


def state(files: MaintenanceFiles) -> dict[str, Any]:
    """What the files make nginx do: maintenance on or off, and the Retry-After while on."""
    on = files.flag is not None
    return dict(maintenance=on, retry_after=retry_after_in(files.include) if on else None)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("maintenance", "put_back")],
        required_one_of=[("maintenance", "put_back")],
        required_by={"maintenance": ("site_path",)},
        supports_check_mode=True,
    )
    params = module.params
    paths = MaintenancePaths(params["include_path"], params["page_path"], params["flag_path"])
    putting_back = params["put_back"] is not None
    action = "put back" if putting_back else f"turned {state_word(params['maintenance'])}"
    try:
        retry_after = validate_retry_after(params["retry_after"])
        put_back = validate_put_back(params["put_back"]) if putting_back else None
        before = read_files(paths)
        site = None if putting_back else as_text(read_file(params["site_path"]))
    except NginxConfigError as exc:
        module.fail_json(msg=str(exc), changed=False)

    result: dict[str, Any] = dict(
        changed=False,
        was_on=before.flag is not None,
        reloaded=False,
        site_checks_flag=None if putting_back else site_checks_flag(site, paths.flag),
        previous=before.as_text(),
        **state(before),
    )
    if result["site_checks_flag"] is False:
        module.fail_json(
            msg=f"maintenance mode was not {action}: "
            + stale_site_message(params["site_path"], paths.flag),
            **result,
        )

    after = files_after(
        before,
        maintenance=params["maintenance"],
        retry_after=retry_after,
        page=params["page_content"],
        since=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        put_back=put_back,
    )
    changes = file_changes(paths, before, after)
    if module._diff:
        result["diff"] = build_diffs(changes)
    if module.check_mode:
        module.exit_json(**dict(result, changed=bool(changes), **state(after)))

    failed = apply_changes(module, changes, params["test_command"], params["reload_command"])
    now = read_files(paths)
    result.update(changed=now != before, **state(now))
    if failed is not None:
        if failed.command:
            result["failed_command"] = {
                "cmd": list(failed.command),
                "rc": failed.rc,
                "stdout": failed.stdout,
                "stderr": failed.stderr,
            }
        module.fail_json(
            msg=failed_message(action, failed), **dict(result, reloaded=failed.reloaded_again)
        )
    module.exit_json(**dict(result, reloaded=any(change.loaded for change in changes)))


if __name__ == "__main__":
    main()
