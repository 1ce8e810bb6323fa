#!/usr/bin/python
# Copyright: (c) 2025, bluegreen contributors
# Apache License 2.0 (see the project's pyproject.toml)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: golden_signals
short_description: Judge a colour by its golden signals, from nginx's logs, Prometheus or /metrics
description:
  - Measures the golden signals of one colour of a service over a time window and judges each
    against warning and critical thresholds, so a release can be verified (or rolled back) on
    evidence rather than on a glance at a dashboard.
  - "Signals: C(targets_down) (share of targets not answering), C(traffic) (requests per
    second), C(error_rate) (responses whose status matches O(error_status_regex) divided by all
    responses), C(latency_p95) and C(latency_p99) (seconds, from the latency histogram), and the
    saturation signals C(cpu), C(memory), C(disk) and C(db_connections) (percent)."
  - "Three sources. V(prometheus) runs instant PromQL queries against a Prometheus server's HTTP
    API (C(/api/v1/query)), evaluated at the end of the window with range selectors of the
    window's length; the p95 latency, for example, is
    histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{job=\"app\",
    route!~\"/health|/metrics\"}[5m])))."
  - "V(scrape) reads every target's C(/metrics) at the start and at the end of the window and
    computes the signals from the growth of the counters and histogram buckets, summed over the
    targets. A counter that went down was reset by a restart, so its end value is what it
    counted; a changed C(<family>_created) series is a reset too."
  - "V(lb) judges the colour from what the load balancers measured: nginx's own log of every
    request, read on each load balancer by the C(nginx_requests) module (C(state=read)) and
    passed in O(lb_windows). It needs nothing from the service (no C(/metrics), no headers).
    Requests, statuses and the exact request times (nginx's 1 ms resolution) of O(colour) are
    added over the load balancers; traffic is their requests over the longest window;
    the error rate counts the logged statuses that match O(error_status_regex); C(latency_p95)
    and C(latency_p99) are exact nearest-rank quantiles of the individual request times (the
    smallest time v with count(<= v) >= ceil(q * n)), not interpolations. C(targets_down)
    comes from O(health_targets), requested once at evaluation time, and is V(not_configured)
    without them. The colour's own use comes from O(host_windows): C(cpu) (its processes'
    CPU as a share of their host's CPUs), C(process_memory) (their memory, MB), C(memory)
    and C(disk) (the host's), C(log_errors) (error events in its journal per minute);
    without O(host_windows) those are V(not_configured), and C(db_connections) always is
    with this source. When
    a load balancer's log lost the part after its mark (C(lost)), or an entry of
    O(lb_windows) has no window (its read failed or was skipped), every request signal is
    V(inconclusive) and the reason names the load balancer."
  - With V(prometheus) and V(scrape) the quantiles are computed exactly as PromQL's
    C(histogram_quantile) computes them for classic histograms (linear interpolation within a
    bucket, 0 as the lower bound of the first bucket, the highest finite bound when the rank
    falls in the C(+Inf) bucket, monotonicity forced), so both sources give the same number for
    the same data.
  - Requests to the routes in O(exclude_routes) (health checks and scrapes by default) are left
    out of traffic, error rate and latency. With O(source=lb) C(nginx_requests) leaves routes
    out as it reads the log (its own C(exclude_routes), counted in C(excluded)), and
    O(exclude_routes) does not apply.
  - "Each signal gets a verdict: V(ok), V(warning), V(critical), or V(inconclusive) when there is
    no data, too few requests (O(min_requests)), an unreachable source or a missing metric; the
    reason says which. A signal whose source is not configured (no O(node_targets), say) is
    V(not_configured) and does not count; so is V(not_judged), a latency quantile over fewer
    request times than it needs (100 for a p99, 20 for a p95), which would be the slowest one.
    A level trips when the value is strictly greater than its threshold; P0 levels mark an
    immediate rollback, and so does a service with every target down."
  - "The overall verdict is V(critical) if any signal is critical; else V(inconclusive) if any
    configured signal is inconclusive; else V(warning) if any is; else V(ok). An analysis
    without data is never V(ok)."
  - Every measurement carries its evidence, the exact PromQL query, the raw counter and bucket
    values at the start and the end per target, or each load balancer's window, requests and
    statuses, so a verdict can be explained afterwards.
  - The module only reads; RV(changed) is always false.
version_added: "0.1.0"
options:
  source:
    description:
      - Where the metrics come from.
      - V(prometheus) queries O(prometheus_url); V(scrape) reads O(targets) directly; V(lb)
        judges O(colour) from the load balancers' request logs in O(lb_windows).
    type: str
    required: true
    choices: [prometheus, scrape, lb]
  mode:
    description:
      - V(analyse) measures the window and judges it.
      - V(sample) only takes a sample now and returns it as RV(sample), so the playbook can
        generate load and then call the module again with O(baseline) set to it.
      - V(sample) is refused with O(source=lb), whose windows come from C(nginx_requests).
    type: str
    choices: [analyse, sample]
    default: analyse
  prometheus_url:
    description:
      - Base URL of the Prometheus server, e.g. C(http://prometheus.example.com:9090).
      - Required with O(source=prometheus).
    type: str
  selector:
    description:
      - PromQL label matchers that select the colour under analysis, braces optional, e.g.
        C(job="sampleapp",colour="green").
      - Merged into every request and latency query, and into the C(up) query that counts the
        targets that are down, so use labels the scrape targets carry (C(job), C(instance),
        C(colour)).
      - Only with O(source=prometheus).
    type: str
    default: ""
  compare_selector:
    description:
      - Label matchers that select the old colour, e.g. C(job="sampleapp",colour="blue").
      - When set, the new colour is compared with the old one over the same window
        (RV(comparison)).
      - Only with O(source=prometheus).
    type: str
  node_selector:
    description:
      - Label matchers that select the node_exporter series of the hosts that run the colour,
        e.g. C(job="node",colour="green"). Enables C(cpu), C(memory) and C(disk).
      - Only with O(source=prometheus).
    type: str
  db_selector:
    description:
      - Label matchers that select the postgres_exporter series of the database, e.g.
        C(job="postgres"). Enables C(db_connections).
      - Only with O(source=prometheus).
    type: str
  targets:
    description:
      - The C(/metrics) URL of every instance of the colour under analysis.
      - Required with O(source=scrape). A target that does not answer at the end of the window
        counts as down.
    type: list
    elements: str
  compare_targets:
    description:
      - The C(/metrics) URLs of the old colour. When set, the new colour is compared with the old
        one over the same window (RV(comparison)).
      - Only with O(source=scrape).
    type: list
    elements: str
  node_targets:
    description:
      - node_exporter URLs (C(http://host:9100/metrics)) of the hosts that run the colour.
        Enables C(cpu), C(memory) and C(disk); the worst host decides.
      - Only with O(source=scrape).
    type: list
    elements: str
  db_targets:
    description:
      - postgres_exporter URLs (C(http://db:9187/metrics)). Enables C(db_connections).
      - Only with O(source=scrape).
    type: list
    elements: str
  lb_windows:
    description:
      - "With O(source=lb), one entry per load balancer: the result of C(nginx_requests) with
        C(state=read) on that load balancer, plus a C(host) key naming it. The module reads
        C(window) (C(since), C(until), C(seconds)), C(colours) (per colour C(requests),
        C(statuses) and C(latency_ms), a histogram of whole milliseconds to counts), C(lost),
        C(rotated), C(unrouted), C(excluded) and C(unparsed)."
      - List every load balancer that serves the colour, including one whose read failed (its
        result without a window, e.g. registered with C(failed_when=false)). An entry with no
        window or with C(lost=true) makes the request signals inconclusive, naming its host;
        a load balancer left out of the list is simply not counted.
      - Required with O(source=lb).
    type: list
    elements: dict
  host_windows:
    description:
      - "With O(source=lb), one entry per app host of O(colour): the result of
        C(colour_usage) with C(state=read) on that host, plus a C(host) key naming it. The
        module reads C(window.seconds), C(cpu) (C(percent_of_host), C(seconds),
        C(restarted), C(problem)), C(memory) (C(process_bytes), C(host_percent),
        C(problem)), C(disk.percent), C(log) (C(events), C(tracebacks), C(lines),
        C(excerpts)) and C(log_problem)."
      - C(cpu), C(memory), C(disk) and C(process_memory) are the highest over the hosts;
        C(log_errors) adds the hosts' events over the longest window. A host without a
        window (its read failed) makes them inconclusive unless the others are critical.
      - Only with O(source=lb).
    type: list
    elements: dict
  dependency_windows:
    description:
      - "With O(source=lb), one entry per app host of either colour: the result of
        C(dependency_probe) on that host, plus C(host) and C(colours) (the colours the
        host runs, e.g. C([green]))."
      - C(dependencies) counts the dependencies that a host of O(colour) cannot reach
        while a host of the other colour can, and is critical above 0 by default, naming
        each. A dependency no host of either colour reaches is down for everyone, not the
        release's doing - the signal is V(inconclusive) naming it, never critical.
      - Without it C(dependencies) is V(not_configured).
      - Only with O(source=lb).
    type: list
    elements: dict
  routes:
    description:
      - "With O(source=lb), routes judged by levels of their own, e.g. a generation
        endpoint allowed a 5 s p95: C([{route: /generate, latency_p95: {warning: 3,
        critical: 5}}]). C(route) is a path or a prefix ending in C(*) (C(/reports/*));
        C(error_rate), C(latency_p95) and C(latency_p99) take levels as O(thresholds) does
        (a level not given is off for the route); C(min_requests) (20) is the fewest
        requests to the route in a window for its signals to be judged, else they are
        V(not_judged) and do not count."
      - Each gives signals named C(<signal>[<route>]). The routes' request times are left
        out of the colour's own latency signals (and of the comparison's); their statuses
        still count in its error rate.
      - The load balancers' reads must carry C(named_routes) for the same routes
        (C(nginx_requests) O(named_routes)).
      - Only with O(source=lb).
    type: list
    elements: dict
  colour:
    description:
      - The colour judged, as the load balancers log it (a key of each window's C(colours)),
        e.g. V(green).
      - Required with O(source=lb).
    type: str
  compare_colour:
    description:
      - The other colour (the old one). When set, the colour is compared with it
        (RV(comparison)), measured in the same windows, or in O(baseline_windows) when
        they are given.
      - Only with O(source=lb).
    type: str
  baseline_host_windows:
    description:
      - With O(source=lb), the old colour's app hosts' C(colour_usage) reads of the time
        before the switch, shaped as O(host_windows). C(log_errors) is then the new colour's
        rate less the old colour's rate in them (never below 0), so a service that always
        logs some errors is judged on what the release added.
      - Only with O(source=lb).
    type: list
    elements: dict
  baseline_windows:
    description:
      - With O(source=lb) and O(compare_colour), the old colour's baseline from before the
        switch, one entry per load balancer, shaped as O(lb_windows) - the result of
        C(nginx_requests) with C(state=read) from a mark taken before the switch, with its
        C(host). Only O(compare_colour)'s requests in them are used, so a read that runs on
        past the switch adds nothing of the new colour.
      - Each measurement of O(colour) is then compared with that baseline (p95 ratio,
        error rate difference). A baseline with fewer than O(min_requests) requests
        leaves the comparison V(not_judged), naming it; the colour's own signals decide.
    type: list
    elements: dict
  health_targets:
    description:
      - The health check URLs of every instance of O(colour), requested once at evaluation
        time with O(timeout); an instance that does not answer HTTP 200 counts as down in
        C(targets_down).
      - Without them C(targets_down) is V(not_configured) with O(source=lb).
      - Only with O(source=lb).
    type: list
    elements: str
  window:
    description:
      - Length of the analysis window in seconds.
      - With O(source=prometheus) the queries look back this far from now (no waiting).
      - With O(source=scrape) and no O(baseline) the module reads the targets, sleeps this long,
        and reads them again.
      - Ignored when O(baseline) is given; the window is then from the baseline to now.
      - Ignored with O(source=lb), whose windows come with O(lb_windows).
    type: int
    default: 300
  baseline:
    description:
      - The RV(sample) returned by an earlier call with the same O(source) and URLs (with
        O(mode=sample), or the previous measurement of an analysis loop). The window runs from
        that sample to now, and nothing sleeps.
      - Refused with O(source=lb).
    type: dict
  min_requests:
    description:
      - Fewest requests in the window for traffic, error rate and latency to be judged; with
        fewer they are inconclusive. Applies to the old colour as well in a comparison.
    type: int
    default: 50
  timeout:
    description:
      - Seconds to wait for each HTTP request (one scrape, one query, or one health check of
        O(health_targets)).
    type: float
    default: 10
  thresholds_file:
    description:
      - YAML file with thresholds per signal, laid over the built-in defaults (the same values
        as C(roles/bluegreen_analysis/files/thresholds.yml)).
      - Read on the machine the module runs on, which is the controller when delegated to
        localhost.
    type: path
  thresholds:
    description:
      - "Thresholds per signal, laid over the defaults and O(thresholds_file), key by key, e.g.
        C({error_rate: {warning: 0.02}, cpu: {p0: null}})."
      - Levels are V(warning), V(critical) and V(p0) (C(latency_p95_ratio) also takes
        V(ignore_below)); V(null) switches a level off. Error rates are ratios (0.01 is 1%),
        saturation is in percent, latency in seconds.
    type: dict
    default: {}
  latency_metric:
    description:
      - Name of the latency histogram, without C(_bucket). Not used with O(source=lb).
    type: str
    default: http_request_duration_seconds
  requests_metric:
    description:
      - Name of the request counter. Not used with O(source=lb).
    type: str
    default: http_requests_total
  route_label:
    description:
      - Label of the request metrics that names the route. Not used with O(source=lb).
    type: str
    default: route
  status_label:
    description:
      - Label of the request metrics that holds the HTTP status code. Not used with
        O(source=lb).
    type: str
    default: status
  exclude_routes:
    description:
      - Values of O(route_label) left out of traffic, error rate and latency (health checks and
        scrapes are not user traffic). Matched exactly.
      - An empty list counts every route.
      - Not applied with O(source=lb); give the routes to C(nginx_requests) (its own
        C(exclude_routes)), which leaves them out as it reads the log.
    type: list
    elements: str
    default: [/health, /metrics]
  error_status_regex:
    description:
      - Regular expression for the statuses that count as errors, matched against the whole
        value of O(status_label), or with O(source=lb) against each status the load balancers
        logged (the keys of C(statuses)).
    type: str
    default: 5..
  disk_mountpoint:
    description:
      - Mount point whose filesystem the C(disk) signal measures.
    type: str
    default: /
  headers:
    description:
      - HTTP headers sent with every request (scrapes, queries, health checks), e.g.
        C(Authorization) for a Prometheus behind a proxy that wants a token.
    type: dict
  validate_certs:
    description:
      - Whether to verify TLS certificates of https URLs.
    type: bool
    default: true
  analysis:
    description:
      - Turns this call into one measurement of an analysis loop. The module appends its own
        verdict to O(analysis.history) and decides whether the loop should continue, pass or fail
        (RV(decision)); the playbook passes RV(history) back on the next call.
      - "Rules, in this order: any measurement with P0 fails at once; more criticals than
        O(analysis.failure_limit) fail; O(analysis.consecutive_failure_limit) criticals in a row
        fail (0 switches this off); more inconclusives than O(analysis.inconclusive_limit) fail as
        inconclusive; fewer than O(analysis.count) measurements continue; at O(analysis.count)
        the analysis passes, unless no measurement was ok or warning."
    type: dict
    suboptions:
      history:
        description: The RV(history) of the previous call (an empty list on the first).
        type: list
        elements: raw
        default: []
      count:
        description: Measurements to take before the analysis can pass.
        type: int
        default: 5
      failure_limit:
        description: Critical measurements tolerated.
        type: int
        default: 0
      consecutive_failure_limit:
        description: Critical measurements in a row that fail the analysis; V(0) for no limit.
        type: int
        default: 0
      inconclusive_limit:
        description: Inconclusive measurements tolerated.
        type: int
        default: 1
extends_documentation_fragment:
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads metrics, so it runs in check mode exactly as without it
      (including the wait for the window).
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - "Run it on the controller (C(delegate_to: localhost), C(run_once: true)); it only needs
    network access to Prometheus or to the targets (with O(source=lb), to the
    O(health_targets) only)."
  - With O(source=scrape) the module uses prometheus_client's parser when the interpreter has
    it, and its own parser of the text exposition format otherwise.
  - PromQL's C(rate) extrapolates to the window's edges while a scrape counts exactly what
    happened between two reads, so the two sources can differ slightly on the same traffic.
  - With O(source=lb) nginx's request time runs from the first byte of the request to the last
    byte of the response, so it includes the network to the client; a service's own histogram
    does not. The two can differ on the same traffic.
seealso:
  - name: histogram_quantile
    description: The PromQL function whose semantics the quantiles follow.
    link: https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile
  - name: Prometheus HTTP API
    description: The instant query endpoint used with O(source=prometheus).
    link: https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries
author:
  - bluegreen contributors
"""

EXAMPLES = r"""
- name: Judge green over the last 5 minutes from Prometheus, against blue
  golden_signals:
    source: prometheus
    prometheus_url: http://prometheus.example.com:9090
    selector: job="sampleapp",colour="green"
    compare_selector: job="sampleapp",colour="blue"
    node_selector: job="node",colour="green"
    db_selector: job="postgres"
    window: 300
  delegate_to: localhost
  run_once: true
  register: green_signals

- name: Roll back when the signals say so
  ansible.builtin.fail:
    msg: "green is {{ green_signals.verdict }}: {{ green_signals.signals
      | dict2items | selectattr('value.verdict', 'eq', 'critical')
      | map(attribute='value.reason') | join('; ') }}"
  when: green_signals.verdict == 'critical'

- name: Take a baseline sample of the idle colour's /metrics
  golden_signals:
    source: scrape
    mode: sample
    targets: ["http://10.0.0.11:8002/metrics", "http://10.0.0.12:8002/metrics"]
    node_targets: ["http://10.0.0.11:9100/metrics", "http://10.0.0.12:9100/metrics"]
  delegate_to: localhost
  run_once: true
  register: green_baseline

- name: Send synthetic traffic to the idle colour
  ansible.builtin.uri:
    url: "http://10.0.0.11:8002/notes?limit=5"
  loop: "{{ range(200) | list }}"
  delegate_to: localhost
  run_once: true

- name: Judge the idle colour on the traffic since the baseline
  golden_signals:
    source: scrape
    targets: ["http://10.0.0.11:8002/metrics", "http://10.0.0.12:8002/metrics"]
    node_targets: ["http://10.0.0.11:9100/metrics", "http://10.0.0.12:9100/metrics"]
    baseline: "{{ green_baseline.sample }}"
    thresholds_file: "{{ role_path }}/files/thresholds.yml"
    thresholds:
      error_rate: {warning: 0.005}
  delegate_to: localhost
  run_once: true
  register: green_pre_switch

- name: One measurement of a post-switch analysis loop (the role repeats it)
  golden_signals:
    source: prometheus
    prometheus_url: http://prometheus.example.com:9090
    selector: job="sampleapp",colour="green"
    window: 60
    analysis:
      history: "{{ previous.history | default([]) }}"
      count: 5
      failure_limit: 0
      inconclusive_limit: 1
  delegate_to: localhost
  run_once: true
  register: previous

- name: Mark the request log on each load balancer before green takes traffic
  nginx_requests:
    path: /var/log/nginx/bluegreen-sampleapp.requests.log
    state: mark
  delegate_to: "{{ item }}"
  loop: "{{ groups['lb'] }}"
  run_once: true
  become: true
  register: lb_marks

- name: Read what each load balancer logged since its mark
  nginx_requests:
    path: /var/log/nginx/bluegreen-sampleapp.requests.log
    state: read
    since: "{{ lb_mark.mark }}"
    exclude_routes: [/health, /metrics]
  delegate_to: "{{ lb_mark.item }}"
  loop: "{{ lb_marks.results }}"
  loop_control:
    loop_var: lb_mark
    label: "{{ lb_mark.item }}"
  run_once: true
  become: true
  register: lb_reads
  failed_when: false  # a load balancer that cannot be read makes the verdict inconclusive

- name: Name each read after its load balancer
  ansible.builtin.set_fact:
    lb_windows: "{{ lb_windows | default([]) + [item | combine({'host': item.lb_mark.item})] }}"
  loop: "{{ lb_reads.results }}"
  loop_control:
    label: "{{ item.lb_mark.item }}"
  run_once: true

- name: Judge green from what the load balancers measured, against blue
  golden_signals:
    source: lb
    colour: green
    compare_colour: blue
    lb_windows: "{{ lb_windows }}"
    health_targets: ["http://10.0.0.11:8002/health", "http://10.0.0.12:8002/health"]
    min_requests: 100
  delegate_to: localhost
  run_once: true
  register: green_signals
"""

RETURN = r"""
verdict:
  description:
    - The overall verdict, V(ok), V(warning), V(inconclusive) or V(critical), over the signals
      and the comparison.
    - V(null) with O(mode=sample).
  returned: always
  type: str
  sample: warning
p0:
  description: Whether a P0 rule tripped (an immediate rollback), including a service that is down.
  returned: always
  type: bool
  sample: false
signals:
  description:
    - One entry per signal (C(targets_down), C(traffic), C(error_rate), C(latency_p95),
      C(latency_p99), C(cpu), C(memory), C(disk), C(db_connections)). Empty with O(mode=sample).
  returned: always
  type: dict
  contains:
    value:
      description: The measured value; V(null) when there is none (see RV(signals.reason)).
      type: float
    unit:
      description: V(s), V(ratio) (0.01 is 1%), V(%) or V(req/s).
      type: str
    warning:
      description: The warning threshold in force; V(null) when off.
      type: float
    critical:
      description: The critical threshold in force; V(null) when off.
      type: float
    p0_threshold:
      description: The P0 threshold in force; V(null) when off.
      type: float
    verdict:
      description: >-
        V(ok), V(warning), V(critical), V(inconclusive), V(not_configured) or V(not_judged).
      type: str
    p0:
      description: Whether this signal tripped a P0 rule.
      type: bool
    reason:
      description: Why the verdict is what it is, with the value and the threshold compared.
      type: str
    query:
      description: The exact PromQL query (O(source=prometheus)).
      type: str
    samples:
      description:
        - "Per target URL, the raw series used, as C({start: {series: value}, end: {series:
          value}}) (O(source=scrape)). Saturation signals add the target's C(value)."
      type: dict
    resets:
      description: Series found reset by a restart during the window (O(source=scrape)).
      type: list
      elements: str
    targets:
      description:
        - For C(targets_down) with O(source=scrape), each target and C(up) or its error.
        - With O(source=lb), each of O(health_targets) and C(up) (it answered 200) or the error.
      type: dict
    windows:
      description:
        - "For the request signals with O(source=lb), per load balancer the window it read and
          what it logged for O(colour): C(since), C(until), C(seconds), C(requests), C(errors)
          (statuses matching O(error_status_regex)), C(statuses), C(lost), C(rotated),
          C(unrouted), C(excluded), C(unparsed); or C(error) when it gave no window."
      type: dict
    p50:
      description: For C(latency_p95) and C(latency_p99) with O(source=lb), the exact median in
        seconds.
      type: float
    observations:
      description: For C(latency_p95) and C(latency_p99) with O(source=lb), the number of request
        times the quantile was taken from.
      type: int
    upstream:
      description:
        - For C(latency_p95) and C(latency_p99) with O(source=lb), the time nginx waited on the
          colour's servers (C($upstream_response_time)), shown beside the request time that is
          judged. C(p50), C(p95), C(p99) in seconds (V(null) without observations), exact
          nearest-rank over every load balancer's window; C(observations) and
          C(no_upstream_time) (requests nginx answered itself).
      type: dict
  sample:
    traffic:
      value: 6.11
      unit: req/s
      warning: null
      critical: null
      p0_threshold: null
      verdict: ok
      p0: false
      reason: traffic 6.11 req/s (no thresholds apply) (1834 requests in 300 s)
      query: sum(rate(http_requests_total{job="sampleapp",route!~"/health|/metrics"}[5m]))
comparison:
  description:
    - The new colour against the old one over the same window; V(null) without
      O(compare_selector), O(compare_targets) or O(compare_colour).
    - C(latency_p95_ratio) (new p95 / old p95) and C(error_rate_diff) (new error rate - old),
      each shaped like an entry of RV(signals); C(baseline) and C(new) hold the values compared
      (and the old colour's queries, samples, or C(colour) and C(windows)); C(verdict) is the
      worse of the two.
  returned: always
  type: dict
  sample:
    latency_p95_ratio: {value: 1.2, unit: factor, warning: 1.5, critical: 2.0, verdict: ok}
    error_rate_diff: {value: 0.001, unit: ratio, warning: 0.01, critical: 0.05, verdict: ok}
    baseline: {requests: 1800, latency_p95: 0.12, error_rate: 0.002}
    new: {latency_p95: 0.144, error_rate: 0.003}
    verdict: ok
window_s:
  description:
    - Length of the window analysed, in seconds; V(null) with O(mode=sample).
    - With O(source=lb) the longest of the load balancers' windows (V(null) when none gave a
      window); traffic is the requests divided by it.
  returned: always
  type: float
  sample: 300.0
requests:
  description:
    - Requests of the colour under analysis in the window, excluded routes left out (with
      O(source=prometheus) the traffic rate times the window, as PromQL's C(increase); with
      O(source=lb) the sum over the load balancers).
    - V(null) when unknown, e.g. with O(source=lb) when a load balancer's window is missing
      or lost.
  returned: always
  type: float
  sample: 1834.0
evaluated_at:
  description:
    - Unix time of the end of the window.
    - With O(source=lb) the latest C(until) of the load balancers' windows.
  returned: always
  type: float
  sample: 1767261600.0
sample:
  description:
    - The sample taken at the end of this call; pass it as O(baseline) to the next call. With
      O(source=scrape) it holds the relevant raw series of every URL; with
      O(source=prometheus) and O(source=lb) only the time (a sample of O(source=lb) is not a
      baseline).
  returned: always
  type: dict
thresholds:
  description:
    - The thresholds in force, after merging the defaults, O(thresholds_file) and O(thresholds).
  returned: always
  type: dict
parser:
  description:
    - The exposition parser used, V(prometheus_client) or V(builtin).
    - V(null) with O(source=prometheus) and O(source=lb).
  returned: always
  type: str
  sample: prometheus_client
decision:
  description: What the analysis loop should do next; only with O(analysis).
  returned: when analysis is set and mode is analyse
  type: dict
  contains:
    action:
      description: V(continue), V(pass) or V(fail).
      type: str
    verdict:
      description:
        - The outcome, V(ok), V(warning), V(critical) or V(inconclusive).
        - V(null) while continuing.
      type: str
    reason:
      description: Which rule decided, with the counts.
      type: str
    measurements:
      description: Measurements so far, this one included.
      type: int
    counts:
      description: Measurements per verdict.
      type: dict
    consecutive_critical:
      description: The longest run of critical measurements.
      type: int
  sample: {action: continue, verdict: null, reason: 2 of 5 measurements taken, measurements: 2}
history:
  description: O(analysis.history) with this measurement appended; pass it back on the next call.
  returned: when analysis is set and mode is analyse
  type: list
  elements: dict
  sample:
    - {verdict: ok, p0: false, at: 1767261600.0}
    - {verdict: warning, p0: false, at: 1767261660.0}
"""

import json
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPException
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.golden_signals import (
    DEFAULT_THRESHOLDS,
    GROUPS,
    Analysis,
    AnalysisLimits,
    GoldenSignalsError,
    QueryAnswer,
    Sample,
    Settings,
    TargetSample,
    analyse_lb,
    analyse_prometheus,
    analyse_scrape,
    analysis_decision,
    build_settings,
    exposition_parser,
    keep_relevant,
    lb_window_end,
    merge_thresholds,
    parse_exposition,
    parse_query_answer,
    prometheus_queries,
    sample_from_dict,
    validate_thresholds,
)
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

ARGUMENT_SPEC: dict[str, dict[str, Any]] = dict(
    source=dict(type="str", required=True, choices=["prometheus", "scrape", "lb"]),
    mode=dict(type="str", default="analyse", choices=["analyse", "sample"]),
    prometheus_url=dict(type="str"),
    selector=dict(type="str", default=""),
    compare_selector=dict(type="str"),
    node_selector=dict(type="str"),
    db_selector=dict(type="str"),
    targets=dict(type="list", elements="str"),
    compare_targets=dict(type="list", elements="str"),
    node_targets=dict(type="list", elements="str"),
    db_targets=dict(type="list", elements="str"),
    lb_windows=dict(type="list", elements="dict"),
    host_windows=dict(type="list", elements="dict"),
    baseline_host_windows=dict(type="list", elements="dict"),
    baseline_windows=dict(type="list", elements="dict"),
    dependency_windows=dict(type="list", elements="dict"),
    routes=dict(type="list", elements="dict"),
    colour=dict(type="str"),
    compare_colour=dict(type="str"),
    health_targets=dict(type="list", elements="str"),
    window=dict(type="int", default=300),
    baseline=dict(type="dict"),
    min_requests=dict(type="int", default=50),
    timeout=dict(type="float", default=10.0),
    thresholds_file=dict(type="path"),
    thresholds=dict(type="dict", default={}),
    latency_metric=dict(type="str", default="http_request_duration_seconds"),
    requests_metric=dict(type="str", default="http_requests_total"),
    route_label=dict(type="str", default="route"),
    status_label=dict(type="str", default="status"),
    exclude_routes=dict(type="list", elements="str", default=["/health", "/metrics"]),
    error_status_regex=dict(type="str", default="5.."),
    disk_mountpoint=dict(type="str", default="/"),
    headers=dict(type="dict", no_log=True),
    validate_certs=dict(type="bool", default=True),
    analysis=dict(
        type="dict",
        options=dict(
            history=dict(type="list", elements="raw", default=[]),
            count=dict(type="int", default=5),
            failure_limit=dict(type="int", default=0),
            consecutive_failure_limit=dict(type="int", default=0),
            inconclusive_limit=dict(type="int", default=1),
        ),
    ),
)

# (status, body, error): status None when no HTTP answer came back at all.
Fetch = Callable[[str], tuple[int | None, bytes | None, str | None]]


def http_fetcher(params: Mapping[str, Any]) -> Fetch:
    """GET a URL with the module's timeout, headers and TLS settings; never raises."""

    def fetch(url: str) -> tuple[int | None, bytes | None, str | None]:
        try:
            response = open_url(
                url,
                headers=params.get("headers") or {},
                timeout=params["timeout"],
                validate_certs=params["validate_certs"],
                http_agent="bluegreen-golden_signals",
            )
            with response:
                return response.status, response.read(), None
        except HTTPError as exc:
            body = exc.read() if exc.fp is not None else None
            return exc.code, body, f"HTTP {exc.code} {exc.reason}"
        except URLError as exc:
            return None, None, str(exc.reason)
        except (OSError, HTTPException, UrlsConnectionError, ValueError) as exc:
            return None, None, str(exc) or type(exc).__name__

    return fetch


def scrape_target(fetch: Fetch, url: str, settings: Settings) -> TargetSample:
    status, body, error = fetch(url)
    taken_at = time.time()
    if status != 200 or body is None:
        return TargetSample(taken_at, None, error or f"HTTP {status}")
    try:
        series = parse_exposition(body.decode("utf-8", errors="replace"))
    except GoldenSignalsError as exc:
        return TargetSample(taken_at, None, f"could not parse the metrics: {exc}")
    return TargetSample(taken_at, keep_relevant(series, settings))


def take_sample(fetch: Fetch, settings: Settings) -> Sample:
    """Read every URL at once (in parallel), so all of them describe the same moment."""
    sample = Sample(source="scrape", taken_at=time.time())
    jobs = [(group, url) for group in GROUPS for url in settings.group(group)]
    with ThreadPoolExecutor(max_workers=min(16, len(jobs))) as pool:
        results = pool.map(lambda job: scrape_target(fetch, job[1], settings), jobs)
        for (group, url), target in zip(jobs, results, strict=True):
            sample.groups.setdefault(group, {})[url] = target
    return sample


def check_health(fetch: Fetch, urls: tuple[str, ...]) -> dict[str, str]:
    """Request every health URL once, in parallel: "up" for a 200, else what went wrong."""

    def state(url: str) -> str:
        status, _, error = fetch(url)
        if status == 200:
            return "up"
        return error or (f"HTTP {status}, not 200" if status is not None else "no answer")

    if not urls:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
        return dict(zip(urls, pool.map(state, urls), strict=True))


def run_queries(
    fetch: Fetch, settings: Settings, queries: Mapping[str, str], at: float
) -> dict[str, QueryAnswer]:
    """Answer every query at time `at`; after a connection failure the rest are not sent."""
    answers: dict[str, QueryAnswer] = {}
    unreachable = None
    for name, query in queries.items():
        if unreachable is not None:
            answers[name] = parse_query_answer(query, None, None, unreachable)
            continue
        url = f"{settings.prometheus_url}/api/v1/query?" + urlencode(
            {"query": query, "time": f"{at:.3f}"}
        )
        status, body, error = fetch(url)
        if status is None:
            unreachable = f"{settings.prometheus_url}: {error}"
            answers[name] = parse_query_answer(query, None, None, unreachable)
            continue
        try:
            decoded = json.loads(body or b"")
        except ValueError:
            decoded = None
        answers[name] = parse_query_answer(query, status, decoded, error)
    return answers


def load_thresholds_file(path: str) -> Any:
    """The parsed thresholds file; JSON is accepted where PyYAML is missing."""
    if not os.path.isfile(path):
        raise GoldenSignalsError(
            f"thresholds_file {path} does not exist (it is read on the machine the module runs "
            "on: delegate the task to localhost to read a file from the controller)"
        )
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        import yaml
    except ImportError:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise GoldenSignalsError(
                f"PyYAML is not installed for this interpreter, so {path} cannot be read; install "
                "python3-yaml, or pass thresholds: \"{{ lookup('file', path) | from_yaml }}\""
            ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GoldenSignalsError(f"thresholds_file {path} is not valid YAML: {exc}") from exc


def effective_thresholds(params: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    thresholds = merge_thresholds(DEFAULT_THRESHOLDS, None, "defaults")
    if params.get("thresholds_file"):
        from_file = load_thresholds_file(params["thresholds_file"])
        thresholds = merge_thresholds(
            thresholds, from_file, f"thresholds_file {params['thresholds_file']}"
        )
    thresholds = merge_thresholds(thresholds, params.get("thresholds"), "thresholds")
    validate_thresholds(thresholds)
    return thresholds


def result_of(
    settings: Settings,
    thresholds: Mapping[str, Any],
    end: Sample,
    analysis: Analysis | None = None,
) -> dict[str, Any]:
    """The module's return values; with no analysis (mode=sample) nothing is judged."""
    judged = (
        analysis.as_dict()
        if analysis is not None
        else dict(verdict=None, p0=False, signals={}, comparison=None, window_s=None, requests=None)
    )
    return dict(
        changed=False,
        **judged,
        evaluated_at=end.taken_at,
        sample=end.as_dict(),
        thresholds=thresholds,
        parser=exposition_parser() if settings.source == "scrape" else None,
    )


def measure_scrape(
    fetch: Fetch, settings: Settings, thresholds: Mapping[str, Any], baseline: Sample | None
) -> tuple[Analysis, Sample]:
    """Read the targets at the start (or use the baseline) and at the end, then judge."""
    start = baseline
    if start is None:
        start = take_sample(fetch, settings)
        time.sleep(settings.window)
    end = take_sample(fetch, settings)
    return analyse_scrape(settings, thresholds, start, end), end


def measure_prometheus(
    fetch: Fetch, settings: Settings, thresholds: Mapping[str, Any], baseline: Sample | None
) -> tuple[Analysis, Sample]:
    """Query the window that ends now (and starts at the baseline when there is one)."""
    end = Sample(source="prometheus", taken_at=time.time())
    window_s = settings.window
    if baseline is not None:
        window_s = max(1, round(end.taken_at - baseline.taken_at))
    queries = prometheus_queries(settings, window_s)
    answers = run_queries(fetch, settings, queries, end.taken_at)
    return analyse_prometheus(settings, thresholds, window_s, queries, answers), end


def measure_lb(
    fetch: Fetch, settings: Settings, thresholds: Mapping[str, Any], baseline: Sample | None
) -> tuple[Analysis, Sample]:
    """Judge the windows the load balancers read; only the health URLs are requested, now."""
    health = check_health(fetch, settings.health_targets)
    end_of_window = lb_window_end(settings)
    end = Sample(source="lb", taken_at=time.time() if end_of_window is None else end_of_window)
    return analyse_lb(settings, thresholds, health), end


MEASURES = {"scrape": measure_scrape, "prometheus": measure_prometheus, "lb": measure_lb}


def analysis_limits(options: Mapping[str, Any] | None) -> AnalysisLimits | None:
    if options is None:
        return None
    return AnalysisLimits(
        count=options["count"],
        failure_limit=options["failure_limit"],
        consecutive_failure_limit=options["consecutive_failure_limit"],
        inconclusive_limit=options["inconclusive_limit"],
    ).validate()


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_if=[
            ("source", "prometheus", ["prometheus_url"]),
            ("source", "scrape", ["targets"]),
            ("source", "lb", ["lb_windows", "colour"]),
        ],
    )
    params = module.params
    fetch = http_fetcher(params)
    try:
        settings = build_settings(params)
        thresholds = effective_thresholds(params)
        limits = analysis_limits(params["analysis"])
        baseline = None
        if params["baseline"] is not None:
            baseline = sample_from_dict(params["baseline"], settings)

        if settings.mode == "sample":
            now = (
                take_sample(fetch, settings)
                if settings.source == "scrape"
                else Sample(source="prometheus", taken_at=time.time())
            )
            module.exit_json(**result_of(settings, thresholds, now))

        analysis, end = MEASURES[settings.source](fetch, settings, thresholds, baseline)
        result = result_of(settings, thresholds, end, analysis)
        if limits is not None:
            history = [
                *params["analysis"]["history"],
                {"verdict": analysis.verdict, "p0": analysis.p0, "at": end.taken_at},
            ]
            result["decision"] = analysis_decision(history, limits).as_dict()
            result["history"] = history
    except GoldenSignalsError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
