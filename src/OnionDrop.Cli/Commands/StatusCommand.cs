using System.CommandLine;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using OnionDrop.Daemon.Status;
using OnionDrop.Files;
using OnionDrop.Storage;

namespace OnionDrop.Cli.Commands;

/// <summary>
/// `oniondrop status`: reads DATA/status.json (never the network), checks that the daemon's pid is alive and
/// the file fresh, and exits with a <see cref="HealthCode"/>: 0 healthy, otherwise the first problem.
/// </summary>
public static class StatusCommand
{
    public static Command Create()
    {
        var json = new Option<bool>("--json") { Description = "Print the status document and a \"health\" object as JSON, for monitoring" };
        var data = new DataDirectoryOptions();
        var command = new Command("status", "Is the daemon healthy? Tor, onion address, submissions waiting, free disk.\n" +
            "Exit codes: 0 healthy, 1 status unreadable, 2 daemon not running or status stale, 3 tor not running, " +
            "4 onion service not published (bootstrapping, no network), 5 degraded (store unreadable, files in orphaned/, disk low).")
        {
            json, data.DataDir, data.Config,
        };
        command.SetAction(parse =>
        {
            string dir;
            try
            {
                // With --data-dir the config file is not read: status works even where it cannot be.
                dir = parse.GetValue(data.DataDir) is { } d ? Path.GetFullPath(d) : data.Load(parse).DataDir;
            }
            catch (ConfigurationError e) { return Report(parse.GetValue(json), null, new(HealthCode.Unreadable, "bad configuration: " + e.Message)); }

            var (status, document, verdict) = Read(Path.Combine(dir, DaemonStatus.FileName));
            return Report(parse.GetValue(json), document, verdict ?? StatusHealth.Evaluate(status!, DateTimeOffset.UtcNow, StatusHealth.ProcessExists, () => DiskNow(dir)), status);
        });
        return command;
    }

    private static (DaemonStatus? Status, JsonObject? Document, HealthVerdict? Failure) Read(string path)
    {
        try
        {
            var text = ReadStatusFile(path);
            return (DaemonStatus.Parse(text), JsonNode.Parse(text)!.AsObject(), null);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return (null, null, new(HealthCode.DaemonNotRunning, $"daemon not running: no {path} (has it ever run with this data directory?)"));
        }
        catch (UnauthorizedAccessException)
        {
            return (null, null, new(HealthCode.Unreadable, $"cannot read {path}: permission denied (run as root or the daemon's user)"));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // Not JSON's own words, which quote the file's first character.
            return (null, null, new(HealthCode.Unreadable, $"cannot read {path}: not a status document"));
        }
        catch (IOException e)
        {
            return (null, null, new(HealthCode.Unreadable, $"cannot read {path}: {e.Message.Split('\n')[0]}"));
        }
    }

    /// <summary>The data directory's disk, as the daemon measures it; null if it cannot be read.</summary>
    private static DiskStatus? DiskNow(string dir)
    {
        try { return DiskStatus.Of(dir); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { return null; }
    }

    private const int MaxStatusBytes = 1 << 20;

    /// <summary>
    /// Reads status.json the way root should read a file in a directory the daemon's user owns: a symbolic link
    /// there is refused (root would otherwise read a file of root's and say what it starts with), a FIFO does not
    /// block, and no more than a status document's worth is read.
    /// </summary>
    private static string ReadStatusFile(string path)
    {
        using var stream = new FileStream(Posix.OpenNoFollow(path, create: false, readOnly: true), FileAccess.Read, 0);
        var buffer = new byte[MaxStatusBytes + 1];
        int length = 0, read;
        while (length < buffer.Length && (read = stream.Read(buffer, length, buffer.Length - length)) > 0) length += read;
        if (length > MaxStatusBytes) throw new IOException("larger than any status document: refused");
        return Encoding.UTF8.GetString(buffer, 0, length);
    }

    private static int Report(bool asJson, JsonObject? document, HealthVerdict verdict, DaemonStatus? status = null)
    {
        if (asJson)
        {
            document ??= [];
            document["health"] = new JsonObject { ["healthy"] = verdict.Healthy, ["code"] = (int)verdict.Code, ["reason"] = verdict.Reason };
            Console.WriteLine(document.ToJsonString(DaemonStatus.Json));
        }
        else
        {
            Console.WriteLine(Printable(verdict.Healthy ? "OnionDrop: healthy" : "OnionDrop: NOT HEALTHY: " + verdict.Reason));
            // Live as long as its pid runs, stale file or not: that case is "running but not writing its status file".
            if (status is not null) Console.Write(Printable(Table(status, DateTimeOffset.UtcNow, live: status.State == "running" && StatusHealth.ProcessExists(status.Pid))));
        }
        if (!verdict.Healthy) Console.Error.WriteLine(Printable("oniondrop status: " + verdict.Reason));
        return (int)verdict.Code;
    }

    /// <summary>
    /// Text from status.json, which the daemon's user writes, reaches root's terminal without its control and
    /// invisible format characters (escape sequences could clear the screen, forge lines or retitle the window).
    /// Line breaks stay. (The JSON output escapes them already.)
    /// </summary>
    internal static string Printable(string text) => string.Join('\n', text.Split('\n').Select(TerminalText.Printable));

    /// <summary>
    /// The human view: one line per concern. Not <paramref name="live"/> (the daemon is gone), it is what the daemon
    /// last wrote, and says so; its loopback address no longer answers.
    /// </summary>
    public static string Table(DaemonStatus s, DateTimeOffset now, bool live = true)
    {
        var rows = new List<(string, string)>
        {
            live
                ? ("daemon", $"{s.State}, pid {s.Pid}, up since {s.StartedAt:u}, status written {StatusHealth.Ago(now - s.UpdatedAt)}")
                : ("daemon", $"NOT running; below, what it last wrote {StatusHealth.Ago(now - s.UpdatedAt)} (then: {s.State}, pid {s.Pid})"),
        };
        if (s.TorMode == "none") rows.Add(("tor", "none (loopback only)"));
        else if (s.Tor is { } t)
        {
            rows.Add(("tor", (t.Running ? t.Answering ? "running" : "running but NOT answering" : "NOT running") + (t.Pid is int p ? $" (pid {p})" : "") + $", {s.TorMode}" +
                $", bootstrap {t.BootstrapPercent}%" + (t.BootstrapSummary is { } b ? $" ({b})" : "") + $", restarts {t.Restarts}"));
            // The descriptor stays in the network for hours after tor stops: published, but nobody is there to answer.
            var reach = !t.Published ? ", not published" : !t.Running ? ", published but unreachable: tor is not running"
                : !t.Answering ? ", published but unreachable: tor is not answering" : ", published";
            rows.Add(("onion address", (t.OnionAddress ?? "not known yet") + reach));
            if (t.LastProblem is { } problem) rows.Add(("tor problem", problem));
        }
        rows.Add(("submissions", s.Submissions is { } w
            ? $"{w.Waiting} waiting ({ByteSize.Format(w.WaitingBytes)})" + (w.OldestWaitingSince is { } d ? $", oldest since {d:yyyy-MM-dd} ({w.OldestWaitingDays} days)" : "") + AsOf(w.AsOf) +
              (w.AsOf is null ? "" : " (counted at start and daily, so that no count dates a submission: fetch to see what arrived since)")
            : "unknown"));
        rows.Add(("free disk", $"{ByteSize.Format(s.Disk.FreeBytes)} of {ByteSize.Format(s.Disk.TotalBytes)} under {s.Disk.Path}" + AsOf(s.Disk.AsOf)));
        if (live && s.Listen is { } l) rows.Add(("loopback", $"http://{l}/"));
        foreach (var problem in s.Problems) rows.Add(("problem", problem));
        return string.Concat(rows.Select(r => $"  {r.Item1,-14} {r.Item2}\n"));
    }

    /// <summary>These figures are taken daily (so that they never tell when a submission arrived): say when.</summary>
    private static string AsOf(DateTimeOffset? taken) => taken is { } t ? $", as of {t.ToUniversalTime():HH:mm} UTC" : "";
}
