using Microsoft.Extensions.Options;
using OnionDrop.Daemon.Tor;
using OnionDrop.Daemon.Web;
using OnionDrop.Sealing;

namespace OnionDrop.Daemon.Hosting;

/// <summary>Fails start-up fast with a message naming the bad setting.</summary>
public sealed class OnionDropOptionsValidator : IValidateOptions<OnionDropOptions>
{
    /// <summary>Kestrel's own ceiling for a request body is long.MaxValue, but a drop box has no use for more.</summary>
    public const long LargestSubmissionBytes = 1L << 40;

    public ValidateOptionsResult Validate(string? name, OnionDropOptions options)
    {
        var errors = new List<string>();

        if (options.Recipients.Count == 0)
            errors.Add("Recipients: at least one journalist public key (odpk1...) is required, or nobody could open a submission");
        // Compared as keys, not text: a key written twice (in another case, with spaces) would seal every
        // submission to it twice, and often stands for another journalist's key pasted wrong.
        var firstEntry = new Dictionary<RecipientPublicKey, int>();
        for (var i = 0; i < options.Recipients.Count; i++)
        {
            var entry = options.Recipients[i] ?? "";
            try
            {
                var key = RecipientPublicKey.Parse(entry.Trim());
                if (!firstEntry.TryAdd(key, i))
                    errors.Add($"Recipients[{i}] \"{Abbreviate(entry.Trim())}\" is the same key as Recipients[{firstEntry[key]}]: list each journalist's key once (was another key meant?)");
            }
            catch (FormatException e) { errors.Add($"Recipients[{i}] \"{Abbreviate(entry)}\" is not a valid public key: {e.Message}"); }
        }

        if (!string.IsNullOrWhiteSpace(options.Listen) && !LoopbackEndpoint.TryParse(options.Listen, out _, out var listenError))
            errors.Add(listenError);

        if (string.IsNullOrWhiteSpace(options.DataDir))
            errors.Add("DataDir must be set");
        if (!string.IsNullOrWhiteSpace(options.WebSocketGroup))
        {
            if (string.IsNullOrWhiteSpace(options.WebSocketDirectory) || SameDirectory(options.WebSocketDirectory, options.DataDir))
                errors.Add($"WebSocketGroup \"{options.WebSocketGroup}\" needs a WebSocketDirectory of its own (e.g. /run/oniondrop): the data directory stays 0700");
            else if (OnionDrop.Tor.UnixAccount.GroupId(options.WebSocketGroup.Trim()) is null)
                errors.Add($"WebSocketGroup \"{options.WebSocketGroup}\" is not a group in /etc/group");
        }
        if (options.MaxSubmissionBytes is < 1024 or > LargestSubmissionBytes)
            errors.Add($"MaxSubmissionBytes must be between 1024 and {LargestSubmissionBytes} (got {options.MaxSubmissionBytes})");
        if (options.MaxFiles is < 1 or > SubmissionSealer.MaxFiles)
            errors.Add($"MaxFiles must be between 1 and {SubmissionSealer.MaxFiles} (got {options.MaxFiles})");
        if (options.MaxMessageChars is < 0 or > SubmissionSealer.MaxMessageChars)
            errors.Add($"MaxMessageChars must be between 0 and {SubmissionSealer.MaxMessageChars}, the most the sealed format holds (got {options.MaxMessageChars})");
        if (options.MaxConcurrentUploads is < 1 or > 10_000)
            errors.Add($"MaxConcurrentUploads must be between 1 and 10000 (got {options.MaxConcurrentUploads})");
        if (options.UploadIdleTimeout < TimeSpan.FromSeconds(1) || options.UploadIdleTimeout > TimeSpan.FromHours(1))
            errors.Add($"UploadIdleTimeout must be between 00:00:01 and 01:00:00 (got {options.UploadIdleTimeout})");
        if (string.IsNullOrWhiteSpace(options.NewsroomName))
            errors.Add("NewsroomName must not be empty");

        // Checked here, not when the store opens or tor starts: a mistake then exited 1, which systemd restarts
        // every few seconds, where a bad configuration must stop the daemon at once (exit 2).
        try { options.Retention.ToStoreOptions().Validate(); }
        catch (ArgumentException e) { errors.Add("Retention: " + e.Message); }
        if (options.Retention.CheckInterval < TimeSpan.FromSeconds(1) || options.Retention.CheckInterval > TimeSpan.FromDays(1))
            errors.Add($"Retention:CheckInterval must be between 00:00:01 and 1.00:00:00 (got {options.Retention.CheckInterval})");
        if (options.Tor == TorMode.Launch && !string.IsNullOrWhiteSpace(options.DataDir) && TorSetup.TorrcProblem(options) is { } torrc)
            errors.Add(torrc);
        if (options.Tor == TorMode.System && !string.IsNullOrWhiteSpace(options.DataDir) && TorSetup.SystemTorProblem(options) is { } socket)
            errors.Add(socket);
        if (options.Tor == TorMode.Launch)
        {
            try { OnionDrop.Tor.TorProcess.ResolveTor(options.TorPath); }
            catch (OnionDrop.Tor.TorNotFoundException e) { errors.Add("TorPath: " + e.Message); }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static bool SameDirectory(string a, string? b) =>
        !string.IsNullOrWhiteSpace(b) && Path.TrimEndingDirectorySeparator(Path.GetFullPath(a)) == Path.TrimEndingDirectorySeparator(Path.GetFullPath(b));

    private static string Abbreviate(string s) => s.Length <= 24 ? s : s[..20] + "...";
}
