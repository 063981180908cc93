using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;

namespace OnionDrop.Tor.Control;

/// <summary>
/// A client for tor's control protocol (control-spec, https://spec.torproject.org/control-spec/) over any
/// pair of pipes: a Unix socket in production, in-memory pipes in tests. Commands are sent one at a time
/// and their replies matched in order (control-spec §2.3: replies come in the order commands were sent);
/// asynchronous 650 events, which may arrive between a command and its reply, go to <see cref="Events"/>.
/// </summary>
public sealed class TorControlClient : IAsyncDisposable
{
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly IDisposable? _connection;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly ConcurrentQueue<TaskCompletionSource<ControlReply>> _pending = new();
    private readonly Channel<TorEvent> _events = Channel.CreateUnbounded<TorEvent>(new() { SingleReader = false, SingleWriter = true });
    private readonly CancellationTokenSource _closing = new();
    private readonly Task _readLoop;

    /// <param name="connection">Disposed with the client (the socket or stream under the pipes).</param>
    public TorControlClient(PipeReader input, PipeWriter output, IDisposable? connection = null)
    {
        _input = input;
        _output = output;
        _connection = connection;
        _readLoop = Task.Run(ReadLoopAsync);
    }

    /// <summary>Connects to a ControlSocket (a Unix socket; tor's "ControlSocket" / "ControlPort unix:" option).</summary>
    public static async Task<TorControlClient> ConnectUnixAsync(string socketPath, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var stream = new NetworkStream(socket, ownsSocket: true);
        return new TorControlClient(PipeReader.Create(stream), PipeWriter.Create(stream), stream);
    }

    /// <summary>Asynchronous events (control-spec §4.1) in arrival order; completes when the connection closes.</summary>
    public ChannelReader<TorEvent> Events => _events.Reader;

    /// <summary>Completes when tor closes the connection (or it breaks).</summary>
    public Task Completion => _readLoop;

    /// <summary>Why the connection ended, if it broke rather than closed.</summary>
    public Exception? Failure { get; private set; }

    /// <summary>Sends one command line (without CRLF) and returns tor's reply, whatever its status.</summary>
    public async Task<ControlReply> SendAsync(string command, CancellationToken cancellationToken = default)
    {
        if (command.AsSpan().IndexOfAny('\r', '\n') >= 0) throw new ArgumentException("a command is one line", nameof(command));
        var reply = new TaskCompletionSource<ControlReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            if (_readLoop.IsCompleted) throw new IOException("the control connection to tor is closed");
            _pending.Enqueue(reply);
            await _output.WriteAsync(Encoding.UTF8.GetBytes(command + "\r\n"), cancellationToken);
        }
        finally
        {
            _writeLock.Release();
        }
        return await reply.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Sends a command and throws <see cref="TorControlException"/> unless tor answers 2yz.</summary>
    public async Task<ControlReply> CommandAsync(string command, CancellationToken cancellationToken = default) =>
        (await SendAsync(command, cancellationToken)).EnsureSuccess(FirstWord(command));

    /// <summary>PROTOCOLINFO (control-spec §3.21): which authentication tor accepts and where its cookie is.</summary>
    public async Task<ProtocolInfo> ProtocolInfoAsync(CancellationToken cancellationToken = default) =>
        ProtocolInfo.Parse(await CommandAsync("PROTOCOLINFO 1", cancellationToken));

    /// <summary>
    /// AUTHENTICATE (control-spec §3.5), choosing the strongest method tor offers: SAFECOOKIE (§3.24
    /// AUTHCHALLENGE; proves we hold the cookie without sending it, and checks tor holds it too), then
    /// COOKIE (the cookie itself, hex), then NULL (no authentication configured).
    /// </summary>
    /// <exception cref="TorAuthenticationException">No usable method, unreadable cookie, or tor refused us.</exception>
    public async Task AuthenticateAsync(CancellationToken cancellationToken = default)
    {
        var info = await ProtocolInfoAsync(cancellationToken);
        var methods = info.AuthMethods;
        if (methods.Contains("SAFECOOKIE") || methods.Contains("COOKIE"))
        {
            var path = info.CookieFile
                       ?? throw new TorAuthenticationException("tor offers cookie authentication but names no cookie file");
            byte[] cookie;
            try { cookie = await File.ReadAllBytesAsync(path, cancellationToken); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new TorAuthenticationException($"cannot read tor's control cookie {path}: {e.Message}" +
                    " (the daemon's user must be able to read it; for Debian's tor, add it to the debian-tor group)", e);
            }
            if (cookie.Length != 32) throw new TorAuthenticationException($"tor's control cookie {path} is {cookie.Length} bytes, not 32");

            string secret;
            if (methods.Contains("SAFECOOKIE")) secret = await SafeCookieResponseAsync(cookie, cancellationToken);
            else secret = Convert.ToHexString(cookie);
            await AuthenticateWithAsync(secret, cancellationToken);
        }
        else if (methods.Contains("NULL"))
        {
            await AuthenticateWithAsync(null, cancellationToken);
        }
        else
        {
            throw new TorAuthenticationException($"tor offers no authentication method we use (it offers {string.Join(",", methods)}; configure CookieAuthentication 1)");
        }
    }

    private async Task AuthenticateWithAsync(string? secret, CancellationToken cancellationToken)
    {
        var reply = await SendAsync(secret is null ? "AUTHENTICATE" : "AUTHENTICATE " + secret, cancellationToken);
        if (!reply.IsSuccess) throw new TorAuthenticationException($"tor refused authentication: {reply.Status} {reply.Message}");
    }

    /// <summary>
    /// AUTHCHALLENGE SAFECOOKIE (control-spec §3.24): we send a client nonce, tor answers with
    /// ServerHash = HMAC-SHA256("Tor safe cookie authentication server-to-controller hash",
    /// CookieString | ClientNonce | ServerNonce) and its ServerNonce. We check ServerHash, then answer
    /// with HMAC-SHA256("Tor safe cookie authentication controller-to-server hash", same message).
    /// </summary>
    private async Task<string> SafeCookieResponseAsync(byte[] cookie, CancellationToken cancellationToken)
    {
        var clientNonce = RandomNumberGenerator.GetBytes(32);
        var reply = await SendAsync("AUTHCHALLENGE SAFECOOKIE " + Convert.ToHexString(clientNonce), cancellationToken);
        if (!reply.IsSuccess) throw new TorAuthenticationException($"tor refused AUTHCHALLENGE: {reply.Status} {reply.Message}");
        var (words, pairs) = ControlGrammar.ParseArguments(reply.Lines[0].Text);
        if (words.Count == 0 || words[0] != "AUTHCHALLENGE" || !pairs.TryGetValue("SERVERHASH", out var serverHashHex)
            || !pairs.TryGetValue("SERVERNONCE", out var serverNonceHex))
            throw new TorAuthenticationException("malformed AUTHCHALLENGE reply: " + reply.Message);
        var serverHash = Convert.FromHexString(serverHashHex);
        var serverNonce = Convert.FromHexString(serverNonceHex);

        var (expectedServerHash, clientHash) = SafeCookieHashes(cookie, clientNonce, serverNonce);
        if (!CryptographicOperations.FixedTimeEquals(expectedServerHash, serverHash))
            throw new TorAuthenticationException("tor's SAFECOOKIE server hash does not match our cookie: the socket is not the tor whose cookie we read");
        return Convert.ToHexString(clientHash);
    }

    /// <summary>The two SAFECOOKIE HMACs of control-spec §3.24 (public for the spec-vector test).</summary>
    public static (byte[] ServerHash, byte[] ClientHash) SafeCookieHashes(byte[] cookie, byte[] clientNonce, byte[] serverNonce)
    {
        byte[] message = [.. cookie, .. clientNonce, .. serverNonce];
        return (HMACSHA256.HashData("Tor safe cookie authentication server-to-controller hash"u8, message),
                HMACSHA256.HashData("Tor safe cookie authentication controller-to-server hash"u8, message));
    }

    /// <summary>
    /// TAKEOWNERSHIP (control-spec §3.23): tor exits when this control connection closes, so a daemon that
    /// dies never leaves its tor behind.
    /// </summary>
    public Task TakeOwnershipAsync(CancellationToken cancellationToken = default) => CommandAsync("TAKEOWNERSHIP", cancellationToken);

    /// <summary>RESETCONF (control-spec §3.2): back to the default, e.g. "__OwningControllerProcess" once we own tor by connection.</summary>
    public Task ResetConfAsync(string key, CancellationToken cancellationToken = default) => CommandAsync("RESETCONF " + key, cancellationToken);

    /// <summary>
    /// GETINFO (control-spec §3.9). Each answer is "250-key=value" or, when long, "250+key=" with a data
    /// block; both come back as one string per key.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, string>> GetInfoAsync(IEnumerable<string> keys, CancellationToken cancellationToken = default)
    {
        var reply = await CommandAsync("GETINFO " + string.Join(' ', keys), cancellationToken);
        return KeyValues(reply);
    }

    public async Task<string> GetInfoAsync(string key, CancellationToken cancellationToken = default) =>
        (await GetInfoAsync([key], cancellationToken)).TryGetValue(key, out var v) ? v : throw new TorControlException("GETINFO", 250, "no value for " + key);

    /// <summary>
    /// GETINFO for keys whose value is a list, each item a QuotedString (net/listeners/*: <c>"unix:/a" "127.0.0.1:9050"</c>);
    /// <see cref="GetInfoAsync(IEnumerable{string}, CancellationToken)"/> would keep the first item only.
    /// </summary>
    public async Task<IReadOnlyDictionary<string, IReadOnlyList<string>>> GetInfoListsAsync(IEnumerable<string> keys, CancellationToken cancellationToken = default)
    {
        var reply = await CommandAsync("GETINFO " + string.Join(' ', keys), cancellationToken);
        var lists = new Dictionary<string, IReadOnlyList<string>>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in reply.Lines)
        {
            var eq = line.Text.IndexOf('=');
            if (eq < 0) continue;   // the final "OK"
            lists[line.Text[..eq]] = ControlGrammar.ParseList(line.Data ?? line.Text[(eq + 1)..]);
        }
        return lists;
    }

    /// <summary>GETCONF (control-spec §3.3): every value of each key ("HiddenServiceOptions" returns the service blocks).</summary>
    public async Task<IReadOnlyList<KeyValuePair<string, string>>> GetConfAsync(IEnumerable<string> keys, CancellationToken cancellationToken = default)
    {
        var reply = await CommandAsync("GETCONF " + string.Join(' ', keys), cancellationToken);
        return reply.Lines.Select(l => ControlGrammar.ParseKeyValue(l.Text)).Select(kv => KeyValuePair.Create(kv.Key, kv.Value)).ToList();
    }

    /// <summary>SETEVENTS (control-spec §3.4): replaces the set of events tor sends us.</summary>
    public Task SetEventsAsync(IEnumerable<string> events, CancellationToken cancellationToken = default) =>
        CommandAsync("SETEVENTS " + string.Join(' ', events), cancellationToken);

    /// <summary>SIGNAL (control-spec §3.7): RELOAD, SHUTDOWN, HALT, NEWNYM, ...</summary>
    public Task SignalAsync(string signal, CancellationToken cancellationToken = default) => CommandAsync("SIGNAL " + signal, cancellationToken);

    /// <summary>
    /// ADD_ONION (control-spec §3.27): creates an onion service owned by this connection (gone when it
    /// closes, unless Flags=Detach). <paramref name="key"/> is "NEW:ED25519-V3" or a stored
    /// "ED25519-V3:base64"; each port is "VirtPort[,Target]" such as "80,unix:/path/web.sock".
    /// </summary>
    public async Task<AddOnionResult> AddOnionAsync(string key, IEnumerable<string> ports, IEnumerable<string>? flags = null,
        IEnumerable<KeyValuePair<string, string>>? options = null, CancellationToken cancellationToken = default)
    {
        var command = new StringBuilder("ADD_ONION ").Append(key);
        var flagList = flags?.ToList() ?? [];
        if (flagList.Count > 0) command.Append(" Flags=").Append(string.Join(',', flagList));
        foreach (var (k, v) in options ?? []) command.Append(' ').Append(k).Append('=').Append(v);
        foreach (var port in ports)
        {
            if (port.Contains(' ')) throw new ArgumentException($"ADD_ONION cannot take a port target with a space: {port}");
            command.Append(" Port=").Append(port);
        }
        var reply = await CommandAsync(command.ToString(), cancellationToken);
        var values = KeyValues(reply);
        return new AddOnionResult(
            values.TryGetValue("ServiceID", out var id) ? id : throw new TorControlProtocolException("ADD_ONION reply without ServiceID"),
            values.GetValueOrDefault("PrivateKey"));
    }

    /// <summary>DEL_ONION (control-spec §3.28).</summary>
    public Task DelOnionAsync(string serviceId, CancellationToken cancellationToken = default) => CommandAsync("DEL_ONION " + serviceId, cancellationToken);

    private static Dictionary<string, string> KeyValues(ControlReply reply)
    {
        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in reply.Lines)
        {
            if (line.Separator == ' ' && line.Text == "OK") continue;
            var (key, value) = ControlGrammar.ParseKeyValue(line.Text);
            values[key] = line.Data ?? value;
        }
        return values;
    }

    private static string FirstWord(string command)
    {
        var space = command.IndexOf(' ');
        return space < 0 ? command : command[..space];
    }

    private async Task ReadLoopAsync()
    {
        var reader = new ControlReplyReader(_input);
        Exception? failure = null;
        try
        {
            while (await reader.ReadAsync(_closing.Token) is { } reply)
            {
                if (reply.IsEvent)
                {
                    TorEvent parsed;
                    try { parsed = TorEvent.Parse(reply); }
                    catch (TorControlProtocolException) { parsed = new UnrecognizedEvent("?", reply.ToString()); }
                    _events.Writer.TryWrite(parsed);
                }
                else if (_pending.TryDequeue(out var waiter)) waiter.TrySetResult(reply);
                else throw new TorControlProtocolException("tor sent a reply to no command: " + reply.Message);
            }
        }
        catch (OperationCanceledException) { }
        catch (Exception e) { failure = e; }
        finally
        {
            var closed = new IOException("the control connection to tor closed", failure);
            while (_pending.TryDequeue(out var waiter)) waiter.TrySetException(closed);
            Failure = failure;
            _events.Writer.TryComplete();
            await _input.CompleteAsync();
        }
    }

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _closing.Cancel();
        try { await _output.CompleteAsync(); } catch (Exception) { /* the peer may be gone */ }
        try { await _readLoop; } catch (Exception) { }
        _connection?.Dispose();
        _closing.Dispose();
    }
}

/// <summary>PROTOCOLINFO's answer (control-spec §3.21).</summary>
public sealed record ProtocolInfo(IReadOnlySet<string> AuthMethods, string? CookieFile, string? TorVersion)
{
    public static ProtocolInfo Parse(ControlReply reply)
    {
        var methods = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        string? cookieFile = null, version = null;
        foreach (var line in reply.Lines)
        {
            var (words, pairs) = ControlGrammar.ParseArguments(line.Text);
            if (words.Count == 0) continue;
            switch (words[0])
            {
                case "AUTH":
                    if (pairs.TryGetValue("METHODS", out var m)) methods.UnionWith(m.Split(',', StringSplitOptions.RemoveEmptyEntries));
                    cookieFile = pairs.GetValueOrDefault("COOKIEFILE");
                    break;
                case "VERSION":
                    version = pairs.GetValueOrDefault("Tor");
                    break;
            }
        }
        return new ProtocolInfo(methods, cookieFile, version);
    }
}

/// <summary>ADD_ONION's answer: the service id (address without ".onion") and, for a NEW key, the key to keep.</summary>
public sealed record AddOnionResult(string ServiceId, string? PrivateKey)
{
    public string OnionAddress => ServiceId + ".onion";
}

/// <summary>We could not authenticate to tor's control port.</summary>
public sealed class TorAuthenticationException(string message, Exception? inner = null) : Exception(message, inner);
