/**
 * A small typed client for the Task API, on `fetch` alone.
 *
 * Every type comes from `schema.d.ts`, which openapi-typescript generates from the server's
 * /openapi.json (`npm run generate`; tests/test_typescript_client.py regenerates it from the app
 * and type-checks this file). A contract change that breaks this client, such as a renamed
 * field, a removed header or a changed type, then fails the test suite instead of a browser.
 */
import type { components, paths } from "./schema";

type Schemas = components["schemas"];
export type Task = Schemas["TaskRead"];
export type Problem = Schemas["Problem"];

type ListOp = paths["/api/{user_id}/tasks"]["get"];
type CreateOp = paths["/api/{user_id}/tasks"]["post"];
type GetOp = paths["/api/{user_id}/tasks/{task_id}"]["get"];
type UpdateOp = paths["/api/{user_id}/tasks/{task_id}"]["put"];
type DeleteOp = paths["/api/{user_id}/tasks/{task_id}"]["delete"];
type CompleteOp = paths["/api/{user_id}/tasks/{task_id}/complete"]["patch"];

export type ListQuery = NonNullable<ListOp["parameters"]["query"]>;
export type TaskCreate = CreateOp["requestBody"]["content"]["application/json"];
export type TaskUpdate = UpdateOp["requestBody"]["content"]["application/json"];
export type TaskCompletion = NonNullable<NonNullable<CompleteOp["requestBody"]>["content"]["application/json"]>;
/** `{ user_id }`: the owner, which must equal the token's `sub`. */
export type OwnerPath = ListOp["parameters"]["path"];
/** `{ user_id, task_id }`. */
export type TaskPath = GetOp["parameters"]["path"];

export interface ClientConfig {
    /** Where the API is served, e.g. `http://127.0.0.1:8000`. */
    baseUrl: string;
    /** A JWT whose `sub` equals the `user_id` of every path. */
    token: string;
}

/** What every failed call throws: the server's RFC 9457 problem details. */
export class ProblemError extends Error {
    readonly problem: Problem;

    constructor(problem: Problem) {
        super(`${problem.status} ${problem.title}: ${problem.detail}`);
        this.name = "ProblemError";
        this.problem = problem;
    }
}

/** The `ETag` of a task, to send back in `If-Match` or `If-None-Match`: its version, quoted. */
export function etagOf(task: Task): string {
    return `"${task.version}"`;
}

export interface TaskPage {
    tasks: ListOp["responses"][200]["content"]["application/json"];
    /** Pass it back as `cursor` (with the same `sort`) for the next page; null on the last one. */
    nextCursor: ListQuery["cursor"];
}

/** `GET /api/{user_id}/tasks`: one page, newest first unless `sort` says otherwise. */
export async function listTasks(config: ClientConfig, path: OwnerPath, query: ListQuery = {}): Promise<TaskPage> {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
        if (value !== undefined && value !== null) params.set(name, String(value));
    }
    const search = params.toString();
    const response = await send(config, "GET", search ? `${tasksUrl(path)}?${search}` : tasksUrl(path), [200]);
    const tasks: TaskPage["tasks"] = await response.json();
    return { tasks, nextCursor: nextCursor(response, config.baseUrl) };
}

/** `POST /api/{user_id}/tasks`. With an `Idempotency-Key`, retrying creates the task only once. */
export async function createTask(
    config: ClientConfig,
    path: OwnerPath,
    body: TaskCreate,
    headers: NonNullable<CreateOp["parameters"]["header"]> = {},
): Promise<CreateOp["responses"][201]["content"]["application/json"]> {
    const response = await send(config, "POST", tasksUrl(path), [201], { body, headers });
    return response.json();
}

/** `GET /api/{user_id}/tasks/{task_id}`; with `If-None-Match`, null means the copy is still current. */
export async function getTask(config: ClientConfig, path: TaskPath): Promise<Task>;
export async function getTask(
    config: ClientConfig,
    path: TaskPath,
    headers: NonNullable<GetOp["parameters"]["header"]>,
): Promise<Task | null>;
export async function getTask(
    config: ClientConfig,
    path: TaskPath,
    headers: NonNullable<GetOp["parameters"]["header"]> = {},
): Promise<GetOp["responses"][200]["content"]["application/json"] | null> {
    const response = await send(config, "GET", taskUrl(path), [200, 304], { headers });
    return response.status === 304 ? null : response.json();
}

/** `PUT /api/{user_id}/tasks/{task_id}`; with `If-Match`, a task changed meanwhile is a 412. */
export async function updateTask(
    config: ClientConfig,
    path: UpdateOp["parameters"]["path"],
    body: TaskUpdate,
    headers: NonNullable<UpdateOp["parameters"]["header"]> = {},
): Promise<UpdateOp["responses"][200]["content"]["application/json"]> {
    const response = await send(config, "PUT", taskUrl(path), [200], { body, headers });
    return response.json();
}

/** `PATCH /api/{user_id}/tasks/{task_id}/complete`: sets `completed`, or toggles it without a body. */
export async function completeTask(
    config: ClientConfig,
    path: CompleteOp["parameters"]["path"],
    body?: TaskCompletion,
    headers: NonNullable<CompleteOp["parameters"]["header"]> = {},
): Promise<CompleteOp["responses"][200]["content"]["application/json"]> {
    const response = await send(config, "PATCH", `${taskUrl(path)}/complete`, [200], { body, headers });
    return response.json();
}

/** `DELETE /api/{user_id}/tasks/{task_id}`; with `If-Match`, a task changed meanwhile is a 412. */
export async function deleteTask(
    config: ClientConfig,
    path: DeleteOp["parameters"]["path"],
    headers: NonNullable<DeleteOp["parameters"]["header"]> = {},
): Promise<void> {
    await send(config, "DELETE", taskUrl(path), [204], { headers });
}

function tasksUrl(path: OwnerPath): string {
    return `/api/${encodeURIComponent(path.user_id)}/tasks`;
}

function taskUrl(path: TaskPath): string {
    return `${tasksUrl(path)}/${path.task_id}`;
}

async function send(
    config: ClientConfig,
    method: string,
    url: string,
    expected: number[],
    { body, headers = {} }: { body?: unknown; headers?: Record<string, string | null | undefined> } = {},
): Promise<Response> {
    const sent = new Headers({ Authorization: `Bearer ${config.token}` });
    for (const [name, value] of Object.entries(headers)) {
        if (value !== undefined && value !== null) sent.set(name, value);
    }
    if (body !== undefined) sent.set("Content-Type", "application/json");
    const response = await fetch(new URL(url, config.baseUrl), {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!expected.includes(response.status)) throw new ProblemError(await problemOf(response));
    return response;
}

async function problemOf(response: Response): Promise<Problem> {
    const text = await response.text();
    if (response.headers.get("Content-Type")?.startsWith("application/problem+json")) {
        return JSON.parse(text) as Problem;
    }
    // Not from the API itself (a proxy, a gateway): the same shape, so callers handle one type.
    return { type: "about:blank", title: response.statusText, status: response.status, detail: text.slice(0, 500) };
}

function nextCursor(response: Response, baseUrl: string): string | null {
    const next = /^<([^>]+)>;\s*rel="next"$/.exec(response.headers.get("Link") ?? "");
    return next?.[1] === undefined ? null : new URL(next[1], baseUrl).searchParams.get("cursor");
}

// --- The contract, checked by the compiler ------------------------------------------------

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

export const contract = {
    completedIsBoolean: true satisfies Equal<Task["completed"], boolean>,
    descriptionIsNullable: true satisfies Equal<Task["description"], string | null>,
    versionIsANumber: true satisfies Equal<Task["version"], number>,
    statusFilterIsTheEnum: true satisfies Equal<ListQuery["status"], Schemas["TaskStatus"] | undefined>,
    staleIfMatchIsAProblem: true satisfies Equal<UpdateOp["responses"][412]["content"]["application/problem+json"], Problem>,
    notModifiedHasNoBody: true satisfies Equal<GetOp["responses"][304]["content"], undefined>,
};

/** Calls all six routes, so the compiler checks each against the contract. */
export async function demo(config: ClientConfig, userId: string): Promise<void> {
    const owner = { user_id: userId };
    const created = await createTask(
        config,
        owner,
        { title: "Buy milk", description: "2 litres, oat" },
        { "Idempotency-Key": crypto.randomUUID() },
    );
    const path = { user_id: userId, task_id: created.id };

    const page = await listTasks(config, owner, { status: "pending", sort: "-created", limit: 10 });
    if (page.nextCursor !== null) await listTasks(config, owner, { sort: "-created", cursor: page.nextCursor });

    const current = (await getTask(config, path, { "If-None-Match": etagOf(created) })) ?? (await getTask(config, path));
    const updated = await updateTask(config, path, { title: "Buy oat milk" }, { "If-Match": etagOf(current) });
    const done = await completeTask(config, path, { completed: true }, { "If-Match": etagOf(updated) });
    const toggled = await completeTask(config, path);
    console.log(done.completed, toggled.completed, toggled.version > done.version);
    await deleteTask(config, path, { "If-Match": etagOf(toggled) });

    try {
        await getTask(config, path);
    } catch (error) {
        if (!(error instanceof ProblemError) || error.problem.status !== 404) throw error;
    }
}

/**
 * Requests the contract forbids, which must not compile (an unused @ts-expect-error fails too).
 * Only the compiler reads this function: calling it would send them.
 */
export function forbiddenByTheContract(config: ClientConfig, path: TaskPath): void {
    const owner = { user_id: path.user_id };
    // @ts-expect-error: a misspelt field (the server would answer 422)
    void createTask(config, owner, { title: "x", titel: "x" });
    // @ts-expect-error: the owner comes from the token, never from the body
    void updateTask(config, path, { title: "x", user_id: "bob" });
    // @ts-expect-error: `completed` is a boolean
    void completeTask(config, path, { completed: "yes" });
    // @ts-expect-error: not a status the list knows
    void listTasks(config, owner, { status: "done" });
    // @ts-expect-error: task ids are numbers
    void getTask(config, { user_id: path.user_id, task_id: "42" });
}
